package optim

import "testing"

// BenchmarkStep times one step over 1M parameters (16 tensors of 65536).
// It must report 0 allocs/op.
func BenchmarkStep(b *testing.B) {
	for _, bc := range []struct {
		name string
		cfg  Config
	}{
		{"sgd", Config{}},
		{"sgd-nesterov", Config{Nesterov: true}},
		{"lars", Config{Optimizer: LARSName}},
		{"adamw", Config{Optimizer: AdamWName}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ps := testParams(16, 1<<16)
			o, err := New(bc.cfg, ps)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(4 << 20)
			b.ReportAllocs()
			for b.Loop() {
				o.Step(1e-3)
			}
		})
	}
}
