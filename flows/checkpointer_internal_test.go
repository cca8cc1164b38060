package flows

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sinks"
)

// TestTimerDoesNotWaitForAWrite: a checkpoint due by the timer is not due
// while the state asked for last is still on its way to the sink; the
// optimize stage neither waits for that write nor asks for a second copy.
func TestTimerDoesNotWaitForAWrite(t *testing.T) {
	c := &checkpointer{t: &parts{}, interval: 1e-9, last: time.Now().Add(-time.Hour)}
	if !c.wants(1) {
		t.Fatal("a due timer asks for no state")
	}
	c.hold(&pipeline.StepState{Steps: 1})
	got := make(chan bool, 1)
	go func() { got <- c.wants(2) }()
	select {
	case want := <-got:
		if want {
			t.Error("asked for a second state while the first is on its way")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the optimize stage waits for the write of a timed checkpoint")
	}
}

// TestFlushCarriesTheMetrics: a state asked for and never received by the
// sink (the flow failed first) is written by flush with the step records
// the metrics file lacks, which the optimize stage recorded.
func TestFlushCarriesTheMetrics(t *testing.T) {
	ml := &metricsLog{}
	ml.written.Store(0) // step 0's line is written, step 1's is not
	p := &parts{metrics: ml, plan: Plan{C: 1, H: 4, W: 4}}
	c := &checkpointer{t: p, dir: filepath.Join(t.TempDir(), "checkpoint"), every: 2}
	p.ckpt = c
	for step := range int64(2) {
		c.record(pipeline.StepMetrics{Step: step, Loss: float64(step)})
	}
	if !c.wants(2) {
		t.Fatal("no checkpoint due at step 2 with every: 2")
	}
	c.hold(&pipeline.StepState{Steps: 2, Model: map[string]pipeline.Tensor{"w": {Shape: []int{1}, Data: []float32{1}}}, State: map[string]pipeline.Tensor{}})
	if err := c.flush(); err != nil {
		t.Fatal(err)
	}
	ck, err := sinks.ReadCheckpoint(c.dir)
	if err != nil {
		t.Fatal(err)
	}
	var carry []pipeline.StepMetrics
	if err := json.Unmarshal([]byte(ck.Info.Extra[pendingMetricsKey]), &carry); err != nil {
		t.Fatalf("pending metrics %q: %v", ck.Info.Extra[pendingMetricsKey], err)
	}
	if len(carry) != 1 || carry[0].Step != 1 {
		t.Errorf("the checkpoint carries %+v, want step 1's record alone", carry)
	}
}
