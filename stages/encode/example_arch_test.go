package encode

import (
	"fmt"
	"math/rand/v2"

	G "gorgonia.org/gorgonia"
)

// A new architecture is one file like this one: its registration and the
// methods of Arch. "tiny" is a toy: a bias-free 3×3 convolution of
// tinyFilters filters with stride 2 ("conv.weight", as a PyTorch
// nn.Conv2d named conv), then the global average pool to tinyFilters
// features. The projection head is added for it.
func init() { RegisterArch(tinyArch{}) }

const tinyFilters = 8

// tinyArch has no options of its own: archBase gives it Fields, Defaults,
// Validate and CheckInput.
type tinyArch struct{ archBase }

func (tinyArch) Name() string        { return "tiny" }
func (tinyArch) Features(Config) int { return tinyFilters }

// Params appends the convolution's weight, uniform in ±1/√(C·3·3) as
// PyTorch draws it.
func (tinyArch) Params(w *Weights, in Input, ini initer) {
	w.addConv("conv", in.C, tinyFilters, 3, ini.uniform)
}

// Build adds the convolution and the pool, with the package's ops.
func (tinyArch) Build(nb *netBuilder, x *act, _ Config) (*G.Node, error) {
	h, err := nb.conv("conv", x, tinyFilters, 3, 2, 1)
	if err != nil {
		return nil, err
	}
	return nb.gap(h), nil
}

// Count says what a replica holds, for the memory estimates: the
// convolution's output per image, its im2col columns and its weight.
func (tinyArch) Count(_ Config, in Input) layerCounts {
	oh, ow := (in.H-1)/2+1, (in.W-1)/2+1
	lc := layerCounts{
		out:  tinyFilters * float64(oh*ow),
		cols: float64(in.C*9) * float64(oh*ow),
		conv: tinyFilters * float64(in.C*9),
		ops:  1,
	}
	lc.params = lc.conv
	return lc
}

// Registering a toy architecture, "tiny", and training with it through
// the public API: NewWeights makes its weights and the head's, a Replica
// runs them, and Config knows the name.
func ExampleRegisterArch() {
	cfg := Config{Arch: "tiny", Hidden: 16, Out: 4}
	in := Input{C: 1, H: 8, W: 8}
	w, err := NewWeights(cfg, in, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		panic(err)
	}
	for _, p := range w.Params {
		fmt.Println(p.Name, p.Shape)
	}
	params, _ := cfg.ParamCount(in)
	fmt.Println(params, "parameters,", w.Features(), "features")

	const n = 4
	r, err := NewReplica(w, n)
	if err != nil {
		panic(err)
	}
	defer r.Close()
	rng := rand.New(rand.NewPCG(3, 4))
	x := make([]float32, n*in.Len())
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	// SGD on L = Σ projection² / 2n, whose dL/dprojection is projection/n.
	loss := func(proj []float32) (l float64) {
		for _, v := range proj {
			l += float64(v) * float64(v) / (2 * n)
		}
		return l
	}
	var first, last float64
	for step := range 5 {
		_, proj, err := r.Forward(x, Train)
		if err != nil {
			panic(err)
		}
		if last = loss(proj); step == 0 {
			first = last
			fmt.Println("projection", len(proj)/n, "values per image")
		}
		g := make([]float32, len(proj))
		for i, v := range proj {
			g[i] = v / n
		}
		if err := r.Backward(g); err != nil {
			panic(err)
		}
		for _, p := range r.Params() {
			for i := range p.Data {
				p.Data[i] -= 0.1 * p.Grad[i]
			}
		}
	}
	fmt.Println("loss went down:", last < first)
	fmt.Println(Config{Arch: "tiny-2"}.Validate())
	// Output:
	// conv.weight [8 1 3 3]
	// head.0.weight [16 8]
	// head.0.bias [16]
	// head.2.weight [4 16]
	// head.2.bias [4]
	// 284 parameters, 8 features
	// projection 4 values per image
	// loss went down: true
	// arch: unknown architecture "tiny-2" (known: "convnet-s", "resnet18", "tiny", "vit")
}
