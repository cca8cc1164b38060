package flows_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/contrastream/contrastream/flows"
	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sinks"
	"github.com/contrastream/contrastream/stages/loss"
)

// TestZeroIsNotTheDefault: a temperature, learning rate or trust
// coefficient written as 0, in the flow file or by --set, is refused with
// the spec's usual error naming the field; only a field left out (or
// null) means the default. They used to mean the default silently.
func TestZeroIsNotTheDefault(t *testing.T) {
	moco, err := flows.YAML("moco")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "zero.yaml")
	if err := os.WriteFile(file, []byte(strings.Replace(string(moco), "temperature: 0.2", "temperature: 0", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	line := 1 + strings.Count(string(moco)[:strings.Index(string(moco), "temperature: 0.2")], "\n")
	for _, tc := range []struct {
		name, flow string
		sets       []string
		want       string // the error's start
	}{
		{"file", file, nil, fmt.Sprintf("%s:%d: stages[4] (loss).temperature: must be a finite number ≥ 0.0001", file, line)},
		{"set", "moco", []string{"stages.loss.temperature=0"}, "--set stages.loss.temperature=0: stages[4] (loss).temperature: must be"},
		{"simclr", "simclr", []string{"stages.loss.temperature=0"}, "--set stages.loss.temperature=0: stages[3] (loss).temperature: must be"},
		{"knn sink", "moco", []string{"sinks.knn.temperature=0"}, "--set sinks.knn.temperature=0: sinks[2] (knn).temperature: must be"},
		{"lr", "moco", []string{"stages.optimize.lr=0"}, "--set stages.optimize.lr=0: stages[5] (optimize).lr: must be"},
		{"trust coefficient", "moco", []string{"stages.optimize.optimizer=lars", "stages.optimize.trust_coefficient=0"},
			"--set stages.optimize.trust_coefficient=0: stages[5] (optimize).trust_coefficient: must be"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := flows.Load(tc.flow, tc.sets)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) || !strings.Contains(err.Error(), "got 0") {
				t.Fatalf("error %v; want one starting %q and saying it got 0", err, tc.want)
			}
		})
	}
	// Left out, the loss's own default: InfoNCE's 0.2.
	spec, err := flows.Load("moco", []string{"stages.loss.temperature=null"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := spec.Stages[4].Config.(*loss.Config)
	l, err := loss.New(*cfg)
	if err != nil || cfg.Temperature != nil || l.(*loss.InfoNCE).Temperature() != loss.DefaultInfoNCETemperature {
		t.Errorf("temperature left out: config %v, loss %v, %v; want the default %g", cfg.Temperature, l, err, loss.DefaultInfoNCETemperature)
	}
}

// TestLoadRefusesHugeFlowFiles: a flow file one byte over
// pipeline.MaxSpecBytes is refused with its name, its size and the limit
// (a comment makes it that large, so it would parse); one of exactly the
// limit loads.
func TestLoadRefusesHugeFlowFiles(t *testing.T) {
	moco, err := flows.YAML("moco")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, size int) string {
		b := append(append([]byte{}, moco...), "\n#"...)
		b = append(b, strings.Repeat("x", size-len(b))...)
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if _, err := flows.Load(write("limit.yaml", pipeline.MaxSpecBytes), nil); err != nil {
		t.Errorf("a flow file of exactly the limit: %v", err)
	}
	big := write("big.yaml", pipeline.MaxSpecBytes+1)
	_, err = flows.Load(big, nil)
	if err == nil {
		t.Fatal("a flow file over the limit loaded")
	}
	for _, want := range []string{big, fmt.Sprint(pipeline.MaxSpecBytes + 1), fmt.Sprint(pipeline.MaxSpecBytes)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// TestPlanRefusesSpecsTooLargeToRecord: a spec built in Go whose
// normalised YAML (what every checkpoint records, and a resume parses)
// would be over pipeline.MaxSpecBytes is refused before it runs.
func TestPlanRefusesSpecsTooLargeToRecord(t *testing.T) {
	spec, err := flows.Load("data", nil)
	if err != nil {
		t.Fatal(err)
	}
	spec.Description = strings.Repeat("x", pipeline.MaxSpecBytes)
	if _, err := flows.PlanOf(spec); err == nil || !strings.Contains(err.Error(), "checkpoint records") {
		t.Errorf("PlanOf: %v, want a refusal of the spec's size", err)
	}
}

// planMoCo plans the moco flow with its kNN monitor off and sets.
func planMoCo(t *testing.T, sets ...string) (flows.Plan, error) {
	t.Helper()
	spec, err := flows.Load("moco", append([]string{"sinks.knn.every=0"}, sets...))
	if err != nil {
		t.Fatal(err)
	}
	return flows.PlanOf(spec)
}

// TestPlanRefusesBatchesOverMemory: batch_size 1,048,576 (the most collate
// takes; the built-in data padded to one batch) is refused before the run
// with the estimate, the limit and how to change them, under the machine's
// default limit and under an explicit one; max_memory -1 lets it plan.
func TestPlanRefusesBatchesOverMemory(t *testing.T) {
	huge := []string{"stages.collate.batch_size=1048576", "stages.collate.last=pad"}
	_, err := planMoCo(t, append(huge, "max_memory=64GiB")...)
	if !errors.Is(err, flows.ErrTooMuchMemory) {
		t.Fatalf("batch 1048576 under max_memory 64GiB: %v, want ErrTooMuchMemory", err)
	}
	for _, want := range []string{"needs an estimated ", "TiB (encoder ", "batch_size 1048576", "limit of 64.0 GiB (the flow's max_memory)",
		"lower stages.collate.batch_size (", "--set max_memory="} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	p, err := planMoCo(t, append(huge, "max_memory=-1")...)
	if err != nil || p.Memory.Total < 1<<40 {
		t.Fatalf("batch 1048576, no limit: %v, estimate %v; want it planned at over 1 TiB", err, p.Memory)
	}
	if limit, _ := flows.MemoryLimit(&pipeline.Spec{}); limit > 0 && limit < p.Memory.Total {
		_, err := planMoCo(t, huge...)
		if !errors.Is(err, flows.ErrTooMuchMemory) || !strings.Contains(err.Error(), "TiB") || !strings.Contains(err.Error(), "90% of") {
			t.Errorf("batch 1048576 under the default limit of %s: %v", pipeline.Bytes(limit), err)
		}
	}
}

// TestSmallLimitRefusesTheDefaultFlow: the moco flow as it is (batch 256,
// kNN monitor on) does not fit in 100 MB; under a limit between its
// estimates at batch 64 and 256 it is refused with a batch size that fits.
func TestSmallLimitRefusesTheDefaultFlow(t *testing.T) {
	prepare := func(sets ...string) error {
		spec, err := flows.Load("moco", sets)
		if err != nil {
			t.Fatal(err)
		}
		_, err = flows.Prepare(spec, pipeline.Options{}, flows.JobOptions{})
		return err
	}
	err := prepare("max_memory=100MB")
	if !errors.Is(err, flows.ErrTooMuchMemory) || !strings.Contains(err.Error(), "limit of 95.4 MiB (the flow's max_memory)") {
		t.Fatalf("Prepare under max_memory 100MB: %v, want ErrTooMuchMemory naming the limit", err)
	}
	estimate := func(batch int) int64 {
		spec, err := flows.Load("moco", []string{"max_memory=-1", fmt.Sprintf("stages.collate.batch_size=%d", batch)})
		if err != nil {
			t.Fatal(err)
		}
		p, err := flows.PlanOf(spec)
		if err != nil {
			t.Fatal(err)
		}
		return p.Memory.Total
	}
	limit := (estimate(64) + estimate(256)) / 2
	err = prepare(fmt.Sprintf("max_memory=%d", limit))
	if !errors.Is(err, flows.ErrTooMuchMemory) {
		t.Fatalf("Prepare under max_memory %d: %v, want ErrTooMuchMemory", limit, err)
	}
	var fit int
	msg := err.Error()
	if i := strings.Index(msg, "batch_size ("); i < 0 {
		t.Fatalf("no batch size suggested in %q", msg)
	} else if _, err := fmt.Sscanf(msg[i+len("batch_size ("):], "%d would fit", &fit); err != nil || fit < 64 || fit >= 256 {
		t.Fatalf("suggested batch size %d (%v) in %q; want 64 to 255", fit, err, msg)
	}
	if e := estimate(fit); e > limit {
		t.Errorf("the suggested batch_size %d needs %d bytes, over the limit %d", fit, e, limit)
	}
	if e := estimate(fit + 1); e <= limit {
		t.Errorf("batch_size %d fits too (%d bytes), and is larger than the suggested %d", fit+1, e, fit)
	}
}

// TestMemoryEstimateIsLinearInTheBatch: moco's estimate (InfoNCE, a
// queue) is a fixed part plus the same amount per sample: about 1.6 MB on
// 28×28 images with convnet-s, before the garbage collector's headroom
// (GOGC percent of it), what the CLI's peak RSS grows by (README, Memory).
// It was 1.41 MB when the encode stage ran one replica per core; at the
// default shard of 32 images every 32 samples add a query and a key
// replica, each with its graph and parameter gradients (about 0.2 MB a
// sample).
func TestMemoryEstimateIsLinearInTheBatch(t *testing.T) {
	var heap, total [3]int64
	for i, b := range []int{256, 512, 1024} {
		p, err := planMoCo(t, fmt.Sprintf("stages.collate.batch_size=%d", b), "max_memory=-1")
		if err != nil {
			t.Fatal(err)
		}
		heap[i], total[i] = p.Memory.Total-p.Memory.GC-p.Memory.Base, p.Memory.Total
	}
	for _, v := range [][3]int64{heap, total} {
		if d1, d2 := v[1]-v[0], v[2]-v[1]; d1 <= 0 || float64(d2) < 1.99*float64(d1) || float64(d2) > 2.01*float64(d1) {
			t.Errorf("estimates %v at batch 256, 512, 1024: not linear", v)
		}
	}
	if perSample := float64(heap[2]-heap[1]) / 512; perSample < 1.4e6 || perSample > 1.8e6 {
		t.Errorf("%.0f bytes a sample before the GC's headroom, want 1.4 to 1.8 MB", perSample)
	}
}

// TestOldCheckpointFlowsStillLoad: a checkpoint of an earlier version
// records 0 for a temperature, lr, trust_coefficient or eps the flow left
// out (every prebuilt flow's trust_coefficient and eps), meaning the
// default. Such a checkpoint still loads (UpgradeRecordedFlow), though its
// flow no longer parses as written; a flow this version records is left
// as it is.
func TestOldCheckpointFlowsStillLoad(t *testing.T) {
	run := t.TempDir()
	if err := prepare(t, "moco", tinySets("moco"), flows.JobOptions{RunDir: run, MaxSteps: 1}).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(run, "checkpoint")
	ck := readCheckpoint(t, dir)
	if got := flows.UpgradeRecordedFlow(ck.Info.Flow); got != ck.Info.Flow {
		t.Errorf("this version's flow was changed:\n%s\nto\n%s", ck.Info.Flow, got)
	}
	old := ck.Info.Flow
	for _, r := range [][2]string{{"trust_coefficient: null", "trust_coefficient: 0"}, {"eps: null", "eps: 0"},
		{"lr: 0.06", "lr: 0"}, {"temperature: 0.2", "temperature: 0"}, {"temperature: 0.1", "temperature: 0.0"}} {
		if !strings.Contains(old, r[0]) {
			t.Fatalf("the recorded flow has no %q:\n%s", r[0], old)
		}
		old = strings.Replace(old, r[0], r[1], 1)
	}
	if _, err := pipeline.ParseSpec([]byte(old), "state.json", nil, nil); err == nil {
		t.Fatal("the old flow parses as written; the test proves nothing")
	}
	ck.Info.Flow = old
	if err := sinks.WriteCheckpoint(dir, *ck); err != nil {
		t.Fatal(err)
	}
	if _, err := flows.LoadEncoder(dir); err != nil {
		t.Fatalf("a checkpoint of an earlier version: %v", err)
	}
	spec, err := pipeline.ParseSpec([]byte(flows.UpgradeRecordedFlow(old)), "state.json", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range spec.Stages {
		if c, ok := s.Config.(*loss.Config); ok && c.Temperature != nil {
			t.Errorf("the loss's recorded 0 became %v, want nil (the default)", *c.Temperature)
		}
	}
}
