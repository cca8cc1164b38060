package augment_test

import (
	"fmt"
	"image"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/stages/augment"
)

func Example() {
	// A 28×28 gray image, like a Fashion-MNIST sample.
	img := image.NewGray(image.Rect(0, 0, 28, 28))
	for i := range img.Pix {
		img.Pix[i] = uint8(i % 251)
	}
	// The zero Config is torch_reference.py's recipe.
	a, err := augment.New(augment.Config{})
	if err != nil {
		panic(err)
	}
	p, err := a.Pair(pipeline.Sample{Index: 7, Label: 3, Image: img}, 42)
	if err != nil {
		panic(err)
	}
	v := p.Views[0]
	fmt.Printf("sample %d: two views of %d×%d×%d float32\n", p.Index, v.C, v.H, v.W)

	// The same (seed, epoch, index, view) always gives the same view.
	var again pipeline.View
	if err := a.View(img, 42, 0, 7, 0, &again); err != nil {
		panic(err)
	}
	fmt.Println("reproducible:", again.Data[100] == v.Data[100] && again.Data[500] == v.Data[500])
	// Output:
	// sample 7: two views of 1×28×28 float32
	// reproducible: true
}

func ExampleConfig() {
	// SimCLR's recipe on 32×32 RGB views: a wider crop, colour jitter
	// (brightness and contrast keep their default 0.4) with p = 0.8,
	// grayscale with p = 0.2. Pointer fields: nil keeps the default,
	// augment.Float(0) turns it off.
	cfg := augment.Config{
		Size:       32,
		Crop:       augment.CropConfig{Scale: [2]float64{0.08, 1}},
		Jitter:     augment.JitterConfig{Saturation: 0.4, Hue: 0.1, P: augment.Float(0.8)},
		GrayscaleP: 0.2,
		Mean:       []float64{0.4914, 0.4822, 0.4465},
		Std:        []float64{0.247, 0.243, 0.261},
	}
	fmt.Println(cfg.Validate())
	cfg.Jitter.Hue = 0.7
	fmt.Println(cfg.Validate())
	// Output:
	// <nil>
	// jitter.hue: must be in [0, 0.5], got 0.7
}
