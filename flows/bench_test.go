package flows

import (
	"context"
	"testing"
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
