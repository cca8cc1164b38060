package loss_test

import (
	"testing"

	"github.com/contrastream/contrastream/stages/loss"
)

// The shapes of the default flows: 256 samples (512 views) of 128
// dimensions, and MoCo's queue of 4096 keys.
func benchLoss(b *testing.B, typ string, workers, n, d, kq int) {
	in := randomInputs(1, n, d, kq)
	for i := range in.Labels {
		in.Labels[i] = int64(i % 10)
	}
	l := mustNew(b, loss.Config{Type: typ, Workers: workers})
	var out loss.Outputs
	if err := l.Compute(in, &out); err != nil { // warm up the buffers
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Compute(in, &out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
}

func BenchmarkInfoNCE(b *testing.B) {
	b.Run("workers=1", func(b *testing.B) { benchLoss(b, loss.TypeInfoNCE, 1, 256, 128, 4096) })
	b.Run("workers=GOMAXPROCS", func(b *testing.B) { benchLoss(b, loss.TypeInfoNCE, 0, 256, 128, 4096) })
}

func BenchmarkNTXent(b *testing.B) {
	b.Run("workers=1", func(b *testing.B) { benchLoss(b, loss.TypeNTXent, 1, 256, 128, 1) })
	b.Run("workers=GOMAXPROCS", func(b *testing.B) { benchLoss(b, loss.TypeNTXent, 0, 256, 128, 1) })
}

func BenchmarkSupCon(b *testing.B) {
	b.Run("workers=1", func(b *testing.B) { benchLoss(b, loss.TypeSupCon, 1, 256, 128, 1) })
	b.Run("workers=GOMAXPROCS", func(b *testing.B) { benchLoss(b, loss.TypeSupCon, 0, 256, 128, 1) })
}
