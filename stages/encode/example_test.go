package encode_test

import (
	"fmt"
	"math/rand/v2"

	"github.com/contrastream/contrastream/stages/encode"
)

// A training step on one shard: forward, the loss's gradient, backward, an
// SGD update in place.
func Example() {
	in := encode.Input{C: 1, H: 28, W: 28}
	w, err := encode.NewWeights(encode.Config{}, in, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		panic(err)
	}
	const n = 8
	r, err := encode.NewReplica(w, n)
	if err != nil {
		panic(err)
	}
	defer r.Close()

	rng := rand.New(rand.NewPCG(3, 4))
	x := make([]float32, n*in.Len())
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	feats, proj, err := r.Forward(x, encode.Train)
	if err != nil {
		panic(err)
	}
	fmt.Println("features", len(feats)/n, "projection", len(proj)/n)

	// L = mean over the shard of sum(projection): dL/dprojection = 1/n.
	g := make([]float32, len(proj))
	for i := range g {
		g[i] = 1.0 / n
	}
	if err := r.Backward(g); err != nil {
		panic(err)
	}
	fmt.Println("dL/d head.2.bias[0] =", r.Param("head.2.bias").Grad[0])
	for _, p := range r.Params() {
		for i := range p.Data {
			p.Data[i] -= 0.1 * p.Grad[i]
		}
	}
	// Output:
	// features 128 projection 128
	// dL/d head.2.bias[0] = 1
}

// Loading PyTorch weights by their state_dict names.
func ExampleWeights_LoadFile() {
	w, err := encode.NewWeights(encode.Config{}, encode.Input{C: 1, H: 28, W: 28}, nil)
	if err != nil {
		panic(err)
	}
	// The test vectors store the weights as "param." + name.
	if err := w.LoadFile("testdata/convnet_s.safetensors", "param."); err != nil {
		panic(err)
	}
	for _, p := range w.Params[:3] {
		fmt.Println(p.Name, p.Shape, "no decay:", p.NoDecay)
	}
	// Output:
	// backbone.0.weight [32 1 3 3] no decay: false
	// backbone.1.weight [32] no decay: true
	// backbone.1.bias [32] no decay: true
}
