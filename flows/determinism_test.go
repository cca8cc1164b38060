package flows_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/contrastream/contrastream/flows"
)

// TestSameBytesOnEveryMachine: the flow fixes the math, the machine only
// the speed. The same flow and seed write byte-identical weights, state
// and losses whatever GOMAXPROCS is and however many workers share the
// encoder's shards: BatchNorm statistics span the batch (whichever shards
// compute them), and every sum runs in a fixed order.
func TestSameBytesOnEveryMachine(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	for _, tc := range []struct {
		name, flow string
		sets       []string
	}{
		{"moco", "moco", nil},
		{"simclr", "simclr", nil},
		{"supcon", "supcon", nil},
		{"resnet18", "moco", []string{"stages.encode.arch=resnet18", "stages.encode.width=4"}},
		{"vit", "moco-vit", []string{"stages.encode.patch=4", "stages.encode.width=16", "stages.encode.mlp=32", "stages.encode.heads=2",
			"stages.encode.hidden=16", "stages.collate.batch_size=8", "stages.optimize.schedule.warmup_steps=1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Batches of 8 in shards of 2: 4 shards a view, so that the
			// workers split a step's BatchNorm groups every way.
			sets := append(tinySets(tc.flow, "stages.encode.shard=2"), tc.sets...)
			if tc.flow == "moco-vit" {
				sets = append(sets, "stages.queue.size=64", "stages.queue.dim=16")
			}
			var want *runBytes
			for _, c := range []struct{ procs, workers int }{
				{2, 0}, {1, 0}, {8, 0}, {2, 1}, {2, 3}, {2, 8},
			} {
				got := runOn(t, tc.flow, sets, c.procs, c.workers)
				if want == nil {
					want = got
					continue
				}
				if err := want.diff(got); err != nil {
					t.Errorf("GOMAXPROCS %d, workers %d: %v (against GOMAXPROCS 2, default workers)", c.procs, c.workers, err)
				}
			}
		})
	}
}

// runBytes is what a run wrote that must not depend on the machine.
type runBytes struct {
	model, state, losses []byte
}

func (a *runBytes) diff(b *runBytes) error {
	switch {
	case !bytes.Equal(a.model, b.model):
		return fmt.Errorf("model.safetensors differs")
	case !bytes.Equal(a.state, b.state):
		return fmt.Errorf("state.safetensors differs")
	case !bytes.Equal(a.losses, b.losses):
		return fmt.Errorf("the losses differ:\n%s\nagainst\n%s", b.losses, a.losses)
	}
	return nil
}

// runOn runs flow for 3 steps under GOMAXPROCS procs with workers
// encoder workers (0: the default) and returns what it wrote.
func runOn(t *testing.T, flow string, sets []string, procs, workers int) *runBytes {
	t.Helper()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
	if workers > 0 {
		sets = append(sets, fmt.Sprintf("stages.encode.workers=%d", workers))
	}
	dir := t.TempDir()
	job := prepare(t, flow, sets, flows.JobOptions{RunDir: dir, MaxSteps: 3})
	if err := job.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	var rb runBytes
	var err error
	if rb.model, err = os.ReadFile(filepath.Join(dir, "checkpoint", "model.safetensors")); err != nil {
		t.Fatal(err)
	}
	if rb.state, err = os.ReadFile(filepath.Join(dir, "checkpoint", "state.safetensors")); err != nil {
		t.Fatal(err)
	}
	for _, m := range readMetrics(t, filepath.Join(dir, "metrics.jsonl")) {
		rb.losses = fmt.Appendf(rb.losses, "step %d loss %v\n", m.Step, m.Loss)
	}
	return &rb
}
