package flows

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sinks"
	"github.com/contrastream/contrastream/sinks/safetensors"
	"github.com/contrastream/contrastream/stages/encode"
	"github.com/contrastream/contrastream/stages/loss"
	"github.com/contrastream/contrastream/stages/optim"
	"github.com/contrastream/contrastream/stages/queue"
)

// parts holds the typed parts of one training job, as its stages are
// built in flow order: what Prepare knows before building (the plan, the
// run folder, a checkpoint to resume from), the parts of the step (the
// encoder, the method's queue and momentum and loss, the optimizer), and
// the sinks that need more than the stream's step records (the metrics
// log, whose progress a checkpoint carries; the checkpoint and kNN sinks,
// which ask the optimize stage for copies of the state).
//
// Each kind that a training flow uses is bound to its job's parts (see
// kinds): a stage finds what the stages before it built in a typed field,
// so the compiler checks the wiring and a missing part is a clear error
// at build time. A parts is used by one job; its fields are set while
// the flow is built and only read while it runs, except where a type says
// otherwise.
type parts struct {
	// Known before the stages are built (Prepare).
	plan    Plan
	spec    *pipeline.Spec
	seed    int64
	run     *runFiles
	resume  *sinks.Checkpoint // continue this run
	init    *sinks.Checkpoint // start from these weights
	control *control

	// The step's parts, set by the stages that own them.
	encoder  *encode.Pool    // encode
	queue    *queue.Queue    // queue (MoCo)
	momentum *queue.Momentum // queue (MoCo): the key encoder's schedule
	loss     loss.Loss       // loss
	opt      optim.Optimizer // optimize

	// Sinks that take part in the step's bookkeeping.
	metrics *metricsLog   // metrics
	ckpt    *checkpointer // checkpoint
	monitor *monitor      // knn
	// wanters are the other sinks that ask for the state (a user's, in
	// Go: see pipeline.StateWanter), set by Prepare.
	wanters []pipeline.StateWanter
}

// needPrepare is the error of a training kind built without its parts:
// checked against DefaultRegistry, a training flow is built by Prepare.
const needPrepare = "the flow's plan is missing: build a training flow with flows.Prepare"

// errNoTrainer is returned by the Build of a training kind outside Prepare.
var errNoTrainer = errors.New(needPrepare)

// close releases the encoder's replicas, if the flow built one.
func (t *parts) close() {
	if t != nil && t.encoder != nil {
		t.encoder.Close()
	}
}

// resumed is the checkpoint the flow resumes from, or nil.
func (t *parts) resumed() *sinks.Checkpoint {
	if t == nil {
		return nil
	}
	return t.resume
}

// trains reports whether the flow trains an encoder.
func (t *parts) trains() bool { return t != nil && t.opt != nil }

// state returns a copy (never sharing memory with the live state, which
// the next step changes while sinks read the copy) of the training state between steps (the encoder's
// weights and the BatchNorm statistics of the last complete step, the key
// encoder, the optimizer's moments and the queue): what the checkpoint
// and kNN sinks receive, and what a checkpoint holds.
func (t *parts) state() *pipeline.StepState {
	model, key := t.encoder.Saved("key.")
	s := &pipeline.StepState{Steps: int64(t.opt.Steps()), Model: toStep(model), State: toStep(key)}
	if s.State == nil {
		s.State = map[string]pipeline.Tensor{}
	}
	addState(s.State, t.opt.State())
	if t.queue != nil {
		addState(s.State, t.queue.State())
	}
	return s
}

// toStep copies ts.
func toStep(ts map[string]safetensors.Tensor) map[string]pipeline.Tensor {
	if ts == nil {
		return nil
	}
	out := make(map[string]pipeline.Tensor, len(ts))
	for n, t := range ts {
		out[n] = pipeline.Tensor{Shape: slices.Clone(t.Shape), Data: slices.Clone(t.F32)}
	}
	return out
}

// fromStep returns ts as safetensors tensors, sharing their data.
func fromStep(ts map[string]pipeline.Tensor) map[string]safetensors.Tensor {
	out := make(map[string]safetensors.Tensor, len(ts))
	for n, t := range ts {
		out[n] = safetensors.Tensor{DType: "F32", Shape: t.Shape, F32: t.Data}
	}
	return out
}

// addState adds copies of state's slices to dst.
func addState(dst map[string]pipeline.Tensor, state map[string][]float32) {
	for name, v := range state {
		dst[name] = pipeline.Tensor{Shape: []int{len(v)}, Data: slices.Clone(v)}
	}
}

// checkpoint returns the checkpoint of s: its tensors (shared, not
// copied), and the run's position, seed and flow. carry are the step
// metrics the metrics file may still lack.
func (t *parts) checkpoint(s *pipeline.StepState, carry []pipeline.StepMetrics) (sinks.Checkpoint, error) {
	info := sinks.CheckpointInfo{Step: s.Steps, Seed: t.seed,
		Extra: map[string]string{inputKey: fmt.Sprintf("%dx%dx%d", t.plan.C, t.plan.H, t.plan.W)}}
	if t.plan.Batches > 0 {
		info.Epoch = int(s.Steps / t.plan.Batches)
		info.Offset = (s.Steps % t.plan.Batches) * int64(t.plan.BatchSize)
	}
	if t.spec != nil {
		if y, err := t.spec.YAML(); err == nil {
			info.Flow = string(y)
		}
	}
	if len(carry) > 0 {
		b, err := json.Marshal(carry)
		if err != nil {
			return sinks.Checkpoint{}, err
		}
		info.Extra[pendingMetricsKey] = string(b)
	}
	return sinks.Checkpoint{Model: fromStep(s.Model), State: fromStep(s.State), Info: info}, nil
}
