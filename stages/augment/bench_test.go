package augment

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/disintegration/imaging"
)

// noisy is a w×h RGB image of smooth colour with noise, like a photo.
func noisy(w, h int) *image.RGBA {
	r := rand.New(rand.NewPCG(1, 2))
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetRGBA(x, y, color.RGBA{
				uint8((x + r.IntN(40)) % 256), uint8((y + r.IntN(40)) % 256), uint8((x*y/64 + r.IntN(40)) % 256), 255,
			})
		}
	}
	return img
}

type benchCase struct {
	name string
	img  image.Image
	cfg  Config
}

func benchCases(b *testing.B) []benchCase {
	return []benchCase{
		{"28x28-gray", fashion(b, 0), Config{}},
		{"224-from-256-rgb", noisy(256, 256), Config{Size: 224, Mean: []float64{0.485, 0.456, 0.406}, Std: []float64{0.229, 0.224, 0.225}}},
	}
}

// BenchmarkAugment times the augmentation stage (the reference recipe:
// crop, flip, brightness and contrast, normalise; two views per sample)
// driven by hand through its worker pool.
func BenchmarkAugment(b *testing.B) {
	for _, bc := range benchCases(b) {
		for _, workers := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/workers=%d", bc.name, workers), func(b *testing.B) {
				cfg := bc.cfg
				cfg.Workers = workers
				st := mustNew(b, cfg).Stage(1)
				ctx := context.Background()
				inCh, outCh := make(chan any, 2*workers), make(chan any, 2*workers)
				b.ReportAllocs()
				b.ResetTimer()
				go func() {
					defer close(inCh)
					for i := range b.N {
						inCh <- pipeline.Sample{Index: int64(i), Image: bc.img}
					}
				}()
				done := make(chan error, 1)
				go func() {
					done <- st.Run(ctx, pipeline.NewInbox(inCh, nil), pipeline.NewOutbox(outCh, nil))
					close(outCh)
				}()
				for v := range outCh { // as collate does: copy (here: nothing), then recycle
					p := v.(pipeline.Pair)
					pipeline.RecycleView(p.Views[0].Data)
					pipeline.RecycleView(p.Views[1].Data)
				}
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
			})
		}
	}
}

// BenchmarkView times one view alone, on one goroutine.
func BenchmarkView(b *testing.B) {
	for _, bc := range benchCases(b) {
		b.Run(bc.name, func(b *testing.B) {
			a := mustNew(b, bc.cfg)
			var v pipeline.View
			b.ReportAllocs()
			for i := range b.N {
				if err := a.View(bc.img, 1, 0, int64(i), 0, &v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkImagingBaseline does the same work with
// github.com/disintegration/imaging (crop, linear resize, flip,
// brightness, contrast on 8-bit NRGBA), then converts to normalised
// float32 CHW: the alternative to this package's float32 kernels. imaging
// v1.6.2 spreads every call over GOMAXPROCS goroutines and cannot be told
// not to.
func BenchmarkImagingBaseline(b *testing.B) {
	for _, bc := range benchCases(b) {
		for _, workers := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/workers=%d", bc.name, workers), func(b *testing.B) {
				a := mustNew(b, bc.cfg)
				size := 28
				if bc.cfg.Size > 0 {
					size = bc.cfg.Size
				}
				var wg sync.WaitGroup
				next := make(chan int, 2*workers)
				b.ReportAllocs()
				b.ResetTimer()
				for range workers {
					wg.Go(func() {
						for i := range next {
							for v := range 2 {
								imagingView(a, bc.img, size, viewKey(1, 0, int64(i), v))
							}
						}
					})
				}
				for i := range b.N {
					next <- i
				}
				close(next)
				wg.Wait()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
			})
		}
	}
}

func imagingView(a *Augmenter, img image.Image, size int, key uint64) []float32 {
	bnd := img.Bounds()
	r := newRNG(key, streamCrop)
	box := sampleCrop(&r, bnd.Dx(), bnd.Dy(), a.p.scale, a.p.ratio)
	out := imaging.Crop(img, image.Rect(box.x, box.y, box.x+box.w, box.y+box.h))
	out = imaging.Resize(out, size, size, imaging.Linear)
	if f := newRNG(key, streamFlip); f.bernoulli(0.5) {
		out = imaging.FlipH(out)
	}
	j := newRNG(key, streamJitter)
	j.float64()
	out = imaging.AdjustBrightness(out, 100*(j.factor(0.4)-1))
	out = imaging.AdjustContrast(out, 100*(j.factor(0.4)-1))
	c := 3
	if isGray(img) {
		c = 1
	}
	n := size * size
	d := make([]float32, c*n)
	for i := range n {
		for k := range c {
			d[k*n+i] = (u8[out.Pix[4*i+k]] - a.mean[c][k]) / a.std[c][k]
		}
	}
	return d
}
