package loss_test

import (
	"runtime"
	"testing"

	"github.com/contrastream/contrastream/stages/loss"
)

func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// TestMemoryBytes: what a loss holds after a call (its scratch, the
// gradient), against MemoryBytes less the stage's alignment scratch
// (2·n·d float32), which the loss alone does not allocate. InfoNCE's
// grows linearly with the batch size, NTXent's and SupCon's mostly as its
// square.
func TestMemoryBytes(t *testing.T) {
	const n, d, k = 256, 64, 1024
	for _, typ := range []string{loss.TypeInfoNCE, loss.TypeNTXent, loss.TypeSupCon} {
		cfg := loss.Config{Type: typ, Workers: 2}
		in := randomInputs(1, n, d, k)
		in.Labels = make([]int64, n)
		for i := range in.Labels {
			in.Labels[i] = int64(i % 10)
		}
		before := heapInUse()
		l := mustNew(t, cfg)
		var out loss.Outputs
		if err := l.Compute(in, &out); err != nil {
			t.Fatal(err)
		}
		held := heapInUse() - before
		runtime.KeepAlive(l)
		runtime.KeepAlive(&out)
		est := cfg.MemoryBytes(n, d, k) - 4*2*n*d
		t.Logf("%s: holds %d bytes, estimate %d", typ, held, est)
		if ratio := float64(est) / float64(held); ratio < 1 || ratio > 1.3 {
			t.Errorf("%s: estimate %d bytes, holds %d (%.2f×); want 1 to 1.3×", typ, est, held, ratio)
		}
		m1, m2, m4 := cfg.MemoryBytes(n, d, k), cfg.MemoryBytes(2*n, d, k), cfg.MemoryBytes(4*n, d, k)
		// From 2n to 4n against n to 2n: 2 for a linear function, 4 for a
		// quadratic one.
		growth := float64(m4-m2) / float64(m2-m1)
		lo, hi := 3.0, 4.0
		if typ == loss.TypeInfoNCE {
			lo, hi = 1.99, 2.01
		}
		if growth < lo || growth > hi {
			t.Errorf("%s: the estimate grows %.2f× as much from 2n to 4n as from n to 2n; want %g to %g", typ, growth, lo, hi)
		}
	}
}
