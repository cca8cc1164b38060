package flows

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/contrastream/contrastream/pipeline"
)

// BenchOptions say what Bench measures.
type BenchOptions struct {
	// Steps is the number of measured training steps. Default 20.
	Steps int
	// Warmup is the number of steps run first and not measured (buffers
	// are allocated on the first). Default 3.
	Warmup int
	// StepOnly measures the training step alone: the flow's first batch
	// is repeated (as the PyTorch reference's --bench-steps does), so
	// loading and augmentation take no time after it. Otherwise the whole
	// flow runs, data stages included.
	StepOnly bool
}

// BenchResult is what Bench measured.
type BenchResult struct {
	// Flow, Arch and Batch name what ran: the flow, the encoder and the
	// samples per step. ImagesPerSample is how many views of each sample
	// the encoders see per step (2: both views, or query and key).
	Flow            string
	Arch            string
	Batch           int
	ImagesPerSample int
	StepOnly        bool
	// Shards, ShardSize and Workers are how the encoder cut the step and
	// how many shards ran at once (the last changes only the speed).
	Shards, ShardSize, Workers int
	// StepSeconds are the measured steps' times as the training step
	// reports them (encode to optimizer step).
	StepSeconds []float64
	// Wall is the time from the end of the last warm-up step to the end of
	// the last measured one: what the whole flow delivered.
	Wall time.Duration
	// AllocBytes is the heap allocated, by every goroutine of the process,
	// over the measured steps.
	AllocBytes uint64
	// PeakRSS is the process's peak resident set, in bytes (0 where the
	// system does not say).
	PeakRSS int64
	// Stages are the flow's per-stage metrics at the end.
	Stages []pipeline.Snapshot
}

// MedianStep is the median of StepSeconds.
func (r BenchResult) MedianStep() float64 {
	if len(r.StepSeconds) == 0 {
		return 0
	}
	s := slices.Clone(r.StepSeconds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Spread is the smallest and largest of StepSeconds.
func (r BenchResult) Spread() (lo, hi float64) {
	if len(r.StepSeconds) == 0 {
		return 0, 0
	}
	return slices.Min(r.StepSeconds), slices.Max(r.StepSeconds)
}

// StepSamplesPerSec is Batch over the median step.
func (r BenchResult) StepSamplesPerSec() float64 {
	if m := r.MedianStep(); m > 0 {
		return float64(r.Batch) / m
	}
	return 0
}

// FlowSamplesPerSec is the samples of the measured steps over Wall.
func (r BenchResult) FlowSamplesPerSec() float64 {
	if r.Wall <= 0 {
		return 0
	}
	return float64(r.Batch*len(r.StepSeconds)) / r.Wall.Seconds()
}

// AllocPerStep is AllocBytes over the measured steps.
func (r BenchResult) AllocPerStep() float64 {
	if len(r.StepSeconds) == 0 {
		return 0
	}
	return float64(r.AllocBytes) / float64(len(r.StepSeconds))
}

// Bench runs the training flow spec for o.Warmup + o.Steps steps, writing
// nothing, and measures them. The spec must train (an encode and an
// optimize stage) and have a collate stage.
func Bench(ctx context.Context, spec *pipeline.Spec, o BenchOptions) (BenchResult, error) {
	if o.Steps == 0 {
		o.Steps = 20
	}
	if o.Warmup == 0 {
		o.Warmup = 3
	}
	if o.Steps < 1 || o.Warmup < 1 {
		return BenchResult{}, fmt.Errorf("bench: steps %d and warm-up %d must be ≥ 1", o.Steps, o.Warmup)
	}
	total := o.Warmup + o.Steps
	sp := *spec
	sp.Stages = slices.Clone(spec.Stages)
	collateAt := slices.IndexFunc(sp.Stages, func(s pipeline.StageSpec) bool { return s.Kind == "collate" })
	if collateAt < 0 {
		return BenchResult{}, fmt.Errorf("bench: flow %q has no collate stage", spec.Name)
	}
	if o.StepOnly {
		sp.Stages = slices.Insert(sp.Stages, collateAt+1, pipeline.StageSpec{Name: "repeat", Kind: "repeat"})
	}
	// The data must last for every step: add epochs when one is short.
	plan, err := PlanOf(&sp)
	if err != nil {
		return BenchResult{}, err
	}
	if !o.StepOnly && plan.Steps() < int64(total) {
		sp.Epochs = int((int64(total) + plan.Batches - 1) / plan.Batches)
	}
	res := BenchResult{Flow: spec.Name, Batch: plan.BatchSize, ImagesPerSample: 2, StepOnly: o.StepOnly}
	var (
		mu    sync.Mutex
		start time.Time
		ms    runtime.MemStats
		alloc uint64
	)
	onStep := func(m pipeline.StepMetrics) {
		mu.Lock()
		defer mu.Unlock()
		n := int(m.Step) + 1
		switch {
		case n == o.Warmup:
			runtime.ReadMemStats(&ms)
			alloc, start = ms.TotalAlloc, time.Now()
		case n > o.Warmup && n <= total:
			res.StepSeconds = append(res.StepSeconds, m.Seconds)
			if n == total {
				res.Wall = time.Since(start)
				runtime.ReadMemStats(&ms)
				res.AllocBytes = ms.TotalAlloc - alloc
			}
		}
	}
	job, err := Prepare(&sp, pipeline.Options{}, JobOptions{MaxSteps: int64(total), onStep: onStep})
	if err != nil {
		return BenchResult{}, err
	}
	if !job.Trains() {
		return BenchResult{}, fmt.Errorf("bench: flow %q does not train (it needs encode and optimize stages)", spec.Name)
	}
	if p := job.Encoder(); p != nil {
		res.Arch = p.Weights().Config().Arch
		res.Shards, res.ShardSize, res.Workers = p.Shards(), p.ShardSize(), p.Workers()
	}
	if err := job.Run(ctx); err != nil {
		return BenchResult{}, err
	}
	if len(res.StepSeconds) < o.Steps {
		return BenchResult{}, fmt.Errorf("bench: the flow ended after %d measured steps of %d", len(res.StepSeconds), o.Steps)
	}
	res.Stages = job.Flow.Metrics()
	res.PeakRSS = PeakRSS()
	return res, nil
}

// PeakRSS returns the process's peak resident set size in bytes (VmHWM of
// /proc/self/status), or 0 where the system does not say.
func PeakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// repeatKind is the "repeat" stage: it forwards the first batch it gets,
// then copies of it (each a new step) for as long as the steps after it
// take them, and reads nothing more: the data stages before it stop,
// blocked, so a benchmark measures the training step alone.
//
//	in:  -B0-B1-B2-...
//	out: -B0-B0'-B0''-B0'''-...
func repeatKind() pipeline.Kind {
	return pipeline.Kind{
		Name: "repeat", Role: pipeline.RoleStage, Accepts: "batch", Produces: "batch",
		Doc:       "repeats the first batch forever (as new steps): for benchmarks of the training step alone",
		NewConfig: func() any { return &discardConfig{} },
		Build: func(any, pipeline.BuildEnv) (pipeline.Stage, error) {
			return pipeline.StageFunc(repeat), nil
		},
	}
}

func repeat(ctx context.Context, in *pipeline.Inbox, out *pipeline.Outbox) error {
	v, ok, err := in.Recv(ctx)
	if err != nil || !ok {
		return err
	}
	first, isBatch := v.(*pipeline.Batch)
	if !isBatch {
		return fmt.Errorf("repeat: got %T, want *pipeline.Batch", v)
	}
	for step := first.Step; ; step++ {
		b := *first // the views are shared: the stages after collate only read them
		b.Step = step
		if err := out.Send(ctx, &b); err != nil {
			return err
		}
	}
}
