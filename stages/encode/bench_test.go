package encode

import (
	"fmt"
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

// BenchmarkPoolStep is the training flows' step of convnet-s on batches of
// 256 28×28 gray images through a Pool (moco: the queries with gradient and
// the keys; simclr: both views with gradient), forward then backward and
// the sum of the shards' gradients, at several shard sizes, to choose
// DefaultShard: go test -run XXX -bench PoolStep -benchtime 10x.
func BenchmarkPoolStep(b *testing.B) {
	const n = 256
	in := Input{C: 1, H: 28, W: 28}
	for _, key := range []bool{true, false} {
		for _, shard := range []int{16, 32, 64, 128, 256} {
			b.Run(fmt.Sprintf("%s/shard=%d", map[bool]string{true: "moco", false: "simclr"}[key], shard), func(b *testing.B) {
				w, err := NewWeights(Config{}, in, rand.New(rand.NewPCG(1, 2)))
				if err != nil {
					b.Fatal(err)
				}
				p := newPool(b, w, PoolConfig{Batch: n, KeyEncoder: key, Shard: shard})
				batch := poolBatch(n, in, 5)
				g := poolGrads(n, w.Out(), 6)
				poolStep(b, p, batch, g)
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					poolStep(b, p, batch, g)
				}
				b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/step")
			})
		}
	}
}
