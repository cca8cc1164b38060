package flows

import (
	"context"
	"testing"

	"github.com/contrastream/contrastream/stages/encode"
	"github.com/contrastream/contrastream/stages/optim"
)

func TestBench(t *testing.T) {
	for _, stepOnly := range []bool{true, false} {
		spec, err := Load("simclr", []string{"stages.collate.batch_size=32"})
		if err != nil {
			t.Fatal(err)
		}
		r, err := Bench(context.Background(), spec, BenchOptions{Steps: 3, Warmup: 1, StepOnly: stepOnly})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.StepSeconds) != 3 || r.Batch != 32 || r.Arch != "convnet-s" || r.ImagesPerSample != 2 {
			t.Fatalf("step only %v: %d steps of batch %d, arch %q", stepOnly, len(r.StepSeconds), r.Batch, r.Arch)
		}
		if r.Shards*r.ShardSize != 2*r.Batch || r.Workers < 1 { // SimCLR: both views go through the shards
			t.Errorf("step only %v: %d shards of %d images on %d workers, for %d queries", stepOnly, r.Shards, r.ShardSize, r.Workers, r.Batch)
		}
		if r.MedianStep() <= 0 || r.Wall <= 0 || r.AllocBytes == 0 {
			t.Errorf("step only %v: median %v, wall %v, alloc %d", stepOnly, r.MedianStep(), r.Wall, r.AllocBytes)
		}
		var repeated bool
		for _, s := range r.Stages {
			if s.Name == "repeat" {
				repeated = true
				if s.In != 1 {
					t.Errorf("repeat read %d batches, want 1", s.In)
				}
			}
		}
		if repeated != stepOnly {
			t.Errorf("step only %v: repeat stage present %v", stepOnly, repeated)
		}
	}
}

func TestBenchNeedsTraining(t *testing.T) {
	spec, err := Load("data", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Bench(context.Background(), spec, BenchOptions{Steps: 1, Warmup: 1}); err == nil {
		t.Fatal("bench of the data flow: no error")
	}
}

// BenchmarkStepChecks times what the optimize stage's Done adds to every
// step to keep non-finite values out of checkpoints: a scan of the
// encoder's and key encoder's weights and statistics and of the
// optimizer's moments (moco, batch 256; the step itself takes about
// 500 ms on 2 cores).
func BenchmarkStepChecks(b *testing.B) {
	for _, arch := range []string{encode.ConvNetS, encode.ResNet18} {
		b.Run(arch, func(b *testing.B) {
			w, err := encode.NewWeights(encode.Config{Arch: arch}, encode.Input{C: 1, H: 28, W: 28}, nil)
			if err != nil {
				b.Fatal(err)
			}
			pool, err := encode.NewPool(w, encode.PoolConfig{Batch: 256, KeyEncoder: true, Shard: 256})
			if err != nil {
				b.Fatal(err)
			}
			defer pool.Close()
			opt, err := optim.New(optim.Config{}, pool.Params())
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if err := finiteWeights(pool); err != nil {
					b.Fatal(err)
				}
				if _, _, _, bad := optim.NonFinite(opt); bad {
					b.Fatal("non-finite")
				}
			}
		})
	}
}
