package encode

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkStep is one training step of convnet-s on a shard of 256 28×28
// gray images: forward in training mode, then backward from a random
// dL/dprojection.
func BenchmarkStep(b *testing.B) {
	const n = 256
	in := Input{C: 1, H: 28, W: 28}
	w, err := NewWeights(Config{}, in, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		b.Fatal(err)
	}
	r, err := NewReplica(w, n)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	rng := rand.New(rand.NewPCG(3, 4))
	x := make([]float32, n*in.Len())
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	g := make([]float32, n*w.Out())
	for i := range g {
		g[i] = float32(rng.NormFloat64()) / n
	}
	// One step first: the replica allocates its buffers on the first run.
	if _, _, err := r.Forward(x, Train); err != nil {
		b.Fatal(err)
	}
	if err := r.Backward(g); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, _, err := r.Forward(x, Train); err != nil {
			b.Fatal(err)
		}
		if err := r.Backward(g); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/step")
}
