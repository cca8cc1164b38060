package flows_test

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/contrastream/contrastream/flows"
	"github.com/contrastream/contrastream/sinks"
	"github.com/contrastream/contrastream/sources"
	"github.com/contrastream/contrastream/stages/optim"
)

// FineTune runs on the training step, whose math the batch size fixes
// (BatchNorm over the whole batch, shards of 32): GOMAXPROCS 1 or 2 and 1
// or 3 workers give the same losses and weights, bit for bit. (The old
// fine-tune took one replica per core, with BatchNorm statistics per
// replica, and failed this.)
func TestFineTuneSameBytesAnyWorkers(t *testing.T) {
	enc, data := tinyEncoder(t, 200)
	type run struct {
		procs, workers int
		r              flows.FineTuneResult
	}
	var runs []run
	for _, procs := range []int{1, 2} {
		for _, workers := range []int{1, 3} {
			func() {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
				// Batches of 64: two shards of 32, so that the workers
				// split the step.
				r, err := flows.FineTune(context.Background(), enc.Weights, enc.Augment,
					flows.FineTuneConfig{Train: data, Test: data, Epochs: 1, BatchSize: 64, Seed: 5, Workers: workers})
				if err != nil {
					t.Fatal(err)
				}
				runs = append(runs, run{procs, workers, r})
			}()
		}
	}
	want := runs[0]
	if len(want.r.Losses) != 3 {
		t.Fatalf("%d steps, want 3 (200 samples, batches of 64)", len(want.r.Losses))
	}
	t.Logf("losses %v, test top-1 %v", want.r.Losses, want.r.Accuracy)
	bits := func(v []float64) []uint64 {
		out := make([]uint64, len(v))
		for i, x := range v {
			out[i] = math.Float64bits(x)
		}
		return out
	}
	for _, got := range runs[1:] {
		what := fmt.Sprintf("GOMAXPROCS %d, %d workers against GOMAXPROCS %d, %d workers", got.procs, got.workers, want.procs, want.workers)
		if !slices.Equal(bits(got.r.Losses), bits(want.r.Losses)) {
			t.Errorf("%s: losses %v, want %v", what, got.r.Losses, want.r.Losses)
		}
		if got.r.Correct != want.r.Correct {
			t.Errorf("%s: %d right, want %d", what, got.r.Correct, want.r.Correct)
		}
		g, w := got.r.Weights.SafeTensors(""), want.r.Weights.SafeTensors("")
		for name, wt := range w {
			if !sameBits(g[name].F32, wt.F32) {
				t.Errorf("%s: %s differs", what, name)
			}
		}
	}
}

// sameBits reports whether a and b hold the same float32 bits.
func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// writeBadRows writes a Parquet file of the first good samples of the
// built-in test split followed by bad rows whose bytes are not an image.
func writeBadRows(t *testing.T, path string, good, bad int) {
	t.Helper()
	ds, err := flows.OpenDataset(sources.Config{Path: flows.BuiltinTest})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	samples, err := ds.ReadChunk(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	w, err := sinks.CreateDataset(path, sinks.DatasetWriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range samples[:good] {
		if err := w.WriteSample(s); err != nil {
			t.Fatal(err)
		}
	}
	for i := range bad {
		if err := w.Write([]byte("not an image"), "", int64(i%10)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// Bad samples in the training set are skipped and counted as in training:
// within the limit the fine-tune goes on; past it, it fails with the
// pipeline's bad-sample error, which names a bad row. (The old fine-tune
// skipped any number without a count.)
func TestFineTuneBadSampleLimit(t *testing.T) {
	enc, test := tinyEncoder(t, 40)
	train := filepath.Join(t.TempDir(), "bad.parquet")
	writeBadRows(t, train, 40, 5)
	cfg := flows.FineTuneConfig{Train: sources.Config{Path: train}, Test: test, Epochs: 1, BatchSize: 8, Seed: 1}
	for _, tc := range []struct {
		name string
		max  *int
		want string // "" for success
	}{
		{"the flow's limit", nil, ""},
		{"five allowed", new(5), ""},
		{"no limit", new(-1), ""},
		{"four allowed", new(4), "too many bad samples (5, limit 4)"},
		{"none allowed", new(0), "too many bad samples (1, limit 0)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg.MaxBadSamples = tc.max
			r, err := flows.FineTune(context.Background(), enc.Weights, enc.Augment, cfg)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(r.Losses) != 5 {
					t.Errorf("%d steps, want 5 (40 good samples, batches of 8)", len(r.Losses))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "bad.parquet row 4") {
				t.Errorf("error %v, want %q naming a bad row", err, tc.want)
			}
		})
	}
	// Past the flow's own limit, 100.
	many := filepath.Join(t.TempDir(), "many.parquet")
	writeBadRows(t, many, 40, 101)
	cfg.Train, cfg.MaxBadSamples = sources.Config{Path: many}, nil
	if _, err := flows.FineTune(context.Background(), enc.Weights, enc.Augment, cfg); err == nil || !strings.Contains(err.Error(), "too many bad samples (101, limit 100)") {
		t.Errorf("101 bad rows: %v, want too many bad samples (101, limit 100)", err)
	}
}

// A learning rate that makes training diverge stops the fine-tune, as it
// stops training, with an error that names the step and says what to
// lower.
func TestFineTuneDiverges(t *testing.T) {
	enc, data := tinyEncoder(t, 40)
	_, err := flows.FineTune(context.Background(), enc.Weights, enc.Augment,
		flows.FineTuneConfig{Train: data, Test: data, Epochs: 2, BatchSize: 8, Seed: 1, Optim: optim.Config{LR: new(1e6)}})
	if err == nil {
		t.Fatal("no error")
	}
	t.Log(err)
	if !regexp.MustCompile(`step \d+`).MatchString(err.Error()) || !strings.Contains(err.Error(), "lower the learning rate") {
		t.Errorf("error %q does not name the step and the learning rate", err)
	}
	if !strings.Contains(err.Error(), "NaN") && !strings.Contains(err.Error(), "Inf") {
		t.Errorf("error %q does not say what was not finite", err)
	}
}

// The finetune flow trains on its own, as any training flow: its metrics
// give each step's loss and batch top-1, and no cosines, alignment or
// uniformity (one view).
func TestFineTuneFlowTrains(t *testing.T) {
	dir := t.TempDir()
	job := prepare(t, "finetune", fineTuneSets(), flows.JobOptions{RunDir: dir})
	if err := job.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	ms := readMetrics(t, filepath.Join(dir, "metrics.jsonl"))
	checkSteps(t, ms, int(job.Plan.Steps()))
	accurate := false
	for _, m := range ms {
		if !(m.Accuracy >= 0 && m.Accuracy <= 1) || m.PosCos != 0 || m.Alignment != 0 || m.Uniformity != 0 {
			t.Errorf("step %d: accuracy %v, pos_cos %v, alignment %v, uniformity %v", m.Step, m.Accuracy, m.PosCos, m.Alignment, m.Uniformity)
		}
		accurate = accurate || m.Accuracy > 0
		if math.Abs(m.Loss-math.Log(10)) > 2 {
			t.Errorf("step %d: loss %v, far from ln 10 for 10 classes", m.Step, m.Loss)
		}
	}
	if !accurate {
		t.Error("no step got a sample right")
	}
	ck := readCheckpoint(t, job.CheckpointDir())
	if got := ck.Model["head.2.weight"].Shape; !slices.Equal(got, []int{10, 16}) {
		t.Errorf("classifier of shape %v, want [10 16]", got)
	}
}
