package queue

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkPush pushes a batch of 256 keys of 128 into MoCo v2's queue.
func BenchmarkPush(b *testing.B) {
	q, err := New(Config{}, rand.NewPCG(1, 0))
	if err != nil {
		b.Fatal(err)
	}
	batch := make([]float32, 256*128)
	b.SetBytes(int64(4 * len(batch)))
	b.ReportAllocs()
	for b.Loop() {
		if err := q.Push(batch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMomentumUpdate updates 1M key-encoder parameters.
func BenchmarkMomentumUpdate(b *testing.B) {
	key, query := make([]float32, 1<<20), make([]float32, 1<<20)
	for i := range query {
		query[i] = float32(i)
	}
	b.SetBytes(8 << 20)
	b.ReportAllocs()
	for b.Loop() {
		MomentumUpdate(key, query, 0.99)
	}
}
