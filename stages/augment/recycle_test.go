package augment

import (
	"math"
	"slices"
	"testing"

	"github.com/contrastream/contrastream/pipeline"
)

// TestRecycledBuffersGiveTheSameViews fills the recycled-view free list
// with NaN and checks that views made in recycled buffers equal views made
// in new ones, bit for bit: every value of a view is written.
func TestRecycledBuffersGiveTheSameViews(t *testing.T) {
	cfgs := []Config{
		{}, // the reference recipe
		{Size: 32, Channels: 3, Mean: []float64{0.5, 0.5, 0.5}, Std: []float64{0.25, 0.25, 0.25}},
	}
	img := noisy(40, 36)
	for _, cfg := range cfgs {
		cfg.Rotation.P = Float(1) // rotation writes through a second buffer
		a := mustNew(t, cfg)
		s := pipeline.Sample{Index: 7, Image: img}
		fresh, err := a.pair(s, 1, new(scratch))
		if err != nil {
			t.Fatal(err)
		}
		for range 64 {
			d := make([]float32, 4*32*32)
			for i := range d {
				d[i] = float32(math.NaN())
			}
			pipeline.RecycleView(d)
		}
		again, err := a.pair(s, 1, new(scratch))
		if err != nil {
			t.Fatal(err)
		}
		for v := range fresh.Views {
			f, g := fresh.Views[v].Data, again.Views[v].Data
			if !slices.EqualFunc(f, g, func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) }) {
				t.Fatalf("size %d view %d differs in a recycled buffer", cfg.Size, v)
			}
		}
	}
}
