package flows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sinks"
	"github.com/contrastream/contrastream/sinks/safetensors"
	"github.com/contrastream/contrastream/stages/encode"
	"github.com/contrastream/contrastream/stages/loss"
	"github.com/contrastream/contrastream/stages/optim"
	"github.com/contrastream/contrastream/stages/queue"
)

// Names under which the training kinds share objects (BuildEnv.Shared).
const (
	sharedPlan     = "plan"     // Plan, set by Prepare
	sharedRun      = "run"      // *runFiles, set by Prepare
	sharedResume   = "resume"   // *sinks.Checkpoint, set by Prepare
	sharedInit     = "init"     // *sinks.Checkpoint whose weights start a new run, set by Prepare
	sharedSpec     = "spec"     // *pipeline.Spec, set by Prepare
	sharedEncoder  = "encoder"  // *encode.Pool, set by encode
	sharedQueue    = "queue"    // *queue.Queue, set by queue
	sharedMomentum = "momentum" // *queue.Momentum, set by queue
	sharedOptim    = "optim"    // optim.Optimizer, set by optimize
	sharedCkpt     = "ckpt"     // *checkpointer, set by the checkpoint sink
	sharedLoss     = "loss"     // loss.Loss, set by loss
	sharedMetrics  = "metrics"  // *metricsLog, set by the metrics sink
	sharedControl  = "control"  // *control, set by Prepare
)

// control is how a Job steers its optimize stage and follows its progress.
type control struct {
	stop     chan struct{} // closed to stop training after the step in progress
	once     sync.Once
	maxSteps int64        // stop once this many steps are taken; 0: never
	steps    atomic.Int64 // steps taken, as of the last completed step
}

func newControl(maxSteps, steps int64) *control {
	c := &control{stop: make(chan struct{}), maxSteps: maxSteps}
	c.steps.Store(steps)
	return c
}

// requestStop asks the optimize stage to stop after the step in progress.
func (c *control) requestStop() { c.once.Do(func() { close(c.stop) }) }

// CheckpointConfig is the config of the "checkpoint" sink. A checkpoint
// is written every Every steps, every Seconds of training, when the run
// ends, stops at its step limit or is interrupted, whichever comes first;
// never after a failed step (a non-finite loss or weight), so the last one
// written stays the last good one.
type CheckpointConfig struct {
	// Dir is the checkpoint folder, relative to the run folder and inside
	// it (not the run folder itself). Default "checkpoint".
	Dir string `yaml:"dir"`
	// Every writes a checkpoint every that many steps (0: not by count).
	Every int `yaml:"every"`
	// Seconds writes a checkpoint once that many seconds have passed
	// since the last one, and at least 50 times the last write's own
	// duration, so that writing costs at most 2% of the training time.
	// nil means DefaultCheckpointSeconds; 0 turns the timer off.
	Seconds *float64 `yaml:"seconds"`
}

// DefaultCheckpointSeconds is the checkpoint sink's default interval: a
// crash loses at most about a minute of training.
const DefaultCheckpointSeconds = 60.0

// Validate checks c.
func (c CheckpointConfig) Validate() error {
	if c.Every < 0 {
		return &pipeline.FieldError{Field: "every", Msg: fmt.Sprintf("must be ≥ 0, got %d", c.Every)}
	}
	if c.Seconds != nil && !(*c.Seconds >= 0 && *c.Seconds <= 1e9) {
		return &pipeline.FieldError{Field: "seconds", Msg: fmt.Sprintf("must be ≥ 0 (0: no timer), got %v", *c.Seconds)}
	}
	if err := localPath(c.Dir); err != nil {
		return &pipeline.FieldError{Field: "dir", Msg: err.Error()}
	}
	return nil
}

// MetricsConfig is the config of the "metrics" sink.
type MetricsConfig struct {
	// File is the JSON-lines file, relative to the run folder and inside
	// it. Default "metrics.jsonl". Its summary goes beside it, with
	// .summary.json for its extension.
	File string `yaml:"file"`
}

// Validate checks c.
func (c MetricsConfig) Validate() error {
	if err := localPath(c.File); err != nil {
		return &pipeline.FieldError{Field: "file", Msg: err.Error()}
	}
	return nil
}

// shared returns what an earlier stage (or Prepare) shares under name, or
// the error msg.
func shared[T any](env pipeline.BuildEnv, name, msg string) (T, error) {
	v, ok := env.Shared[name].(T)
	if !ok {
		var zero T
		return zero, errors.New(msg)
	}
	return v, nil
}

const needPrepare = "the flow's plan is missing: build a training flow with flows.Prepare"

func trainingKinds() []pipeline.Kind {
	return []pipeline.Kind{
		{
			Name: "encode", Role: pipeline.RoleStage, Accepts: "batch", Produces: "encoded",
			Doc:       "runs each batch through the encoder's replicas (and MoCo's momentum encoder)",
			NewConfig: func() any { return &encode.StageConfig{} },
			Build: func(cfg any, env pipeline.BuildEnv) (pipeline.Stage, error) {
				c := cfg.(*encode.StageConfig)
				plan, err := shared[Plan](env, sharedPlan, needPrepare)
				if err != nil {
					return nil, err
				}
				if plan.BatchSize == 0 || plan.C == 0 {
					return nil, errors.New("encode needs augment and collate before it")
				}
				w, err := encode.NewWeights(c.Config, encode.Input{C: plan.C, H: plan.H, W: plan.W}, rand.New(rand.NewPCG(uint64(env.Seed), 1)))
				if err != nil {
					return nil, err
				}
				ck, _ := env.Shared[sharedResume].(*sinks.Checkpoint)
				if ck != nil {
					if err := w.Load(&safetensors.File{Tensors: ck.Model}, ""); err != nil {
						return nil, fmt.Errorf("resume: %w", err)
					}
				}
				if init, _ := env.Shared[sharedInit].(*sinks.Checkpoint); init != nil {
					if err := w.Load(&safetensors.File{Tensors: init.Model}, ""); err != nil {
						return nil, fmt.Errorf("init from checkpoint: %w", err)
					}
				}
				pool, err := encode.NewPool(w, c.PoolConfig(plan.BatchSize))
				if err != nil {
					return nil, err
				}
				if ck != nil && c.KeyEncoder {
					if err := pool.KeyWeights().Load(&safetensors.File{Tensors: ck.State}, "key."); err != nil {
						pool.Close()
						return nil, fmt.Errorf("resume: key encoder: %w", err)
					}
				}
				if err := pool.LoadBuffers(); err != nil {
					pool.Close()
					return nil, err
				}
				if ck != nil {
					pool.SetFirstStep(ck.Info.Step)
				}
				env.Shared[sharedEncoder] = pool
				return pool.Stage(), nil
			},
		},
		{
			Name: "queue", Role: pipeline.RoleStage, Accepts: "encoded", Produces: "encoded",
			Doc:       "MoCo: adds the queue of earlier keys as negatives, then enqueues the batch's keys",
			NewConfig: func() any { return &queue.Config{} },
			Build: func(cfg any, env pipeline.BuildEnv) (pipeline.Stage, error) {
				c := cfg.(*queue.Config)
				plan, err := shared[Plan](env, sharedPlan, needPrepare)
				if err != nil {
					return nil, err
				}
				q, err := queue.New(*c, rand.NewPCG(uint64(env.Seed), 2))
				if err != nil {
					return nil, err
				}
				pool, err := shared[*encode.Pool](env, sharedEncoder, "the queue holds the keys of an encoder: put an encode stage (key_encoder: true) before it")
				if err != nil {
					return nil, err
				}
				if out := pool.Weights().Out(); out != q.Dim() {
					return nil, &pipeline.FieldError{Field: "dim", Msg: fmt.Sprintf("the queue holds keys of dimension %d, but the encode stage's embeddings (its out) have %d: set the queue's dim to %d, or the encoder's out to %d",
						q.Dim(), out, out, q.Dim())}
				}
				if ck, _ := env.Shared[sharedResume].(*sinks.Checkpoint); ck != nil {
					if err := q.Load(stateSlices(ck.State, "queue.")); err != nil {
						return nil, fmt.Errorf("resume: %w", err)
					}
				}
				mom, err := c.NewMomentum(int(plan.Steps()))
				if err != nil {
					return nil, err
				}
				env.Shared[sharedQueue], env.Shared[sharedMomentum] = q, mom
				return q.Stage(), nil
			},
		},
		{
			Name: "loss", Role: pipeline.RoleStage, Accepts: "encoded", Produces: "encoded",
			Doc:       "the contrastive loss (infonce, ntxent, supcon) and its gradient for the embeddings",
			NewConfig: func() any { return &loss.Config{} },
			Build: func(cfg any, env pipeline.BuildEnv) (pipeline.Stage, error) {
				l, err := loss.New(*cfg.(*loss.Config))
				if err != nil {
					return nil, err
				}
				plan, err := shared[Plan](env, sharedPlan, needPrepare)
				if err != nil {
					return nil, err
				}
				if _, err := shared[*encode.Pool](env, sharedEncoder, "a loss needs the embeddings of an encode stage before it"); err != nil {
					return nil, err
				}
				switch l.Name() {
				case loss.TypeSupCon:
					if !plan.Labeled {
						return nil, &pipeline.FieldError{Field: "type", Msg: "supcon needs labels, and the source's dataset has none: use a labelled dataset (a Parquet or Arrow label column: source.label_column; IDX labels: source.labels; an image folder's sub-folders), or an unsupervised loss (type: ntxent)"}
					}
				case loss.TypeInfoNCE:
					if _, ok := env.Shared[sharedQueue].(*queue.Queue); !ok {
						return nil, &pipeline.FieldError{Field: "type", Msg: "infonce takes its negatives from a queue: put a queue stage (after an encode stage with key_encoder: true) before the loss, or use type: ntxent"}
					}
				}
				env.Shared[sharedLoss] = l
				return loss.Stage(l), nil
			},
		},
		{
			Name: "optimize", Role: pipeline.RoleStage, Accepts: "encoded", Produces: "step",
			Doc:       "back-propagates, steps the optimizer (and MoCo's momentum encoder), reports the step",
			NewConfig: func() any { return &optim.Config{} },
			Build:     buildOptimize,
		},
		{
			Name: "metrics", Role: pipeline.RoleSink, Accepts: "step",
			Doc:       "writes one JSON line per step to a file of the run folder",
			NewConfig: func() any { return &MetricsConfig{} },
			Build: func(cfg any, env pipeline.BuildEnv) (pipeline.Stage, error) {
				c := cfg.(*MetricsConfig)
				rf, _ := env.Shared[sharedRun].(*runFiles)
				if rf == nil || rf.dir == "" {
					return pipeline.StageFunc(discard), nil // no run folder: nothing to write to
				}
				if _, dup := env.Shared[sharedMetrics]; dup {
					return nil, errors.New("a flow has at most one metrics sink")
				}
				name := c.File
				if name == "" {
					name = "metrics.jsonl"
				}
				ml := &metricsLog{path: rf.addFile(name), summary: rf.addFile(summaryName(name))}
				ml.written.Store(-1)
				env.Shared[sharedMetrics] = ml
				return ml.stage(), nil
			},
		},
		{
			Name: "knn", Role: pipeline.RoleSink, Accepts: "step",
			Doc:       "the kNN monitor: weighted-kNN accuracy of the encoder (eval mode, a copy of its weights) every N epochs, to eval.jsonl",
			NewConfig: func() any { return &MonitorConfig{} },
			Build:     buildMonitor,
		},
		{
			Name: "checkpoint", Role: pipeline.RoleSink, Accepts: "step",
			Doc:       "writes checkpoints (model.safetensors, state.safetensors, state.json) to the run folder",
			NewConfig: func() any { return &CheckpointConfig{} },
			Build: func(cfg any, env pipeline.BuildEnv) (pipeline.Stage, error) {
				c := cfg.(*CheckpointConfig)
				rf, _ := env.Shared[sharedRun].(*runFiles)
				if _, dup := env.Shared[sharedCkpt]; dup {
					return nil, errors.New("a flow has at most one checkpoint sink")
				}
				if rf != nil && rf.dir != "" {
					rf.ckpt = c.Dir
					if rf.ckpt == "" {
						rf.ckpt = "checkpoint"
					}
					ck := &checkpointer{dir: rf.checkpointDir(), every: c.Every, interval: DefaultCheckpointSeconds, last: time.Now()}
					if c.Seconds != nil {
						ck.interval = *c.Seconds
					}
					env.Shared[sharedCkpt] = ck
				}
				return pipeline.StageFunc(discard), nil // the optimize stage writes them, between steps
			},
		},
	}
}

func buildOptimize(cfg any, env pipeline.BuildEnv) (pipeline.Stage, error) {
	c := cfg.(*optim.Config)
	plan, err := shared[Plan](env, sharedPlan, needPrepare)
	if err != nil {
		return nil, err
	}
	pool, err := shared[*encode.Pool](env, sharedEncoder, "optimize trains an encoder: put an encode stage (and a loss) before it")
	if err != nil {
		return nil, err
	}
	if _, err := shared[loss.Loss](env, sharedLoss, "optimize needs the gradient of a loss: put a loss stage between encode and optimize"); err != nil {
		return nil, err
	}
	ctl, _ := env.Shared[sharedControl].(*control)
	if ctl == nil {
		ctl = newControl(0, 0)
	}
	opt, err := optim.New(*c, pool.Params())
	if err != nil {
		return nil, err
	}
	if ck, _ := env.Shared[sharedResume].(*sinks.Checkpoint); ck != nil {
		if err := opt.Load(stateSlices(ck.State, "optim.")); err != nil {
			return nil, fmt.Errorf("resume: %w", err)
		}
	}
	sched, err := c.NewSchedule(int(plan.Steps()))
	if err != nil {
		return nil, err
	}
	env.Shared[sharedOptim] = opt
	mom, _ := env.Shared[sharedMomentum].(*queue.Momentum)
	hooks := optim.StepHooks{
		Backward: pool.Backward,
		Release:  pool.Release,
		After: func(steps int64) (float64, error) {
			var m float64
			if pool.KeyParams() != nil {
				m = queue.DefaultMomentum
				if mom != nil {
					m = mom.At(int(steps - 1))
				}
				if err := queue.MomentumUpdateParams(pool.KeyParams(), pool.Params(), m); err != nil {
					return 0, err
				}
			}
			return m, nil
		},
		// The step is complete (the MoCo queue has its keys): its state is
		// what a checkpoint saves. The encoder has not yet run the next
		// batch, so replica 0's BatchNorm statistics are the step's.
		Done: func(m pipeline.StepMetrics) (bool, error) {
			steps := m.Step + 1
			if err := pool.SyncBuffers(); err != nil {
				return false, err
			}
			if err := finiteWeights(pool); err != nil {
				return false, err // the last checkpoint stays the last good one
			}
			if name, i, v, bad := optim.NonFinite(opt); bad {
				return false, fmt.Errorf("the optimizer's %s[%d] is %v: the training diverged (lower the learning rate)", name, i, v)
			}
			ctl.steps.Store(steps)
			mon, _ := env.Shared[sharedMonitor].(*monitor)
			if mon != nil {
				mon.capture(steps, pool.Weights())
			}
			stop := ctl.maxSteps > 0 && steps >= ctl.maxSteps
			if ck, _ := env.Shared[sharedCkpt].(*checkpointer); ck != nil {
				ml, _ := env.Shared[sharedMetrics].(*metricsLog)
				ck.record(m, ml)
				// The last step's checkpoint is Job.Run's, once the sinks
				// have written all they hold: a crash before it resumes
				// from the step before and takes the last step again.
				// A checkpoint also waits for the kNN records of earlier
				// steps: their weights are gone once it replaces the last.
				settled := mon == nil || mon.settled(steps)
				if last := stop || steps >= plan.Steps(); !last && settled && ck.due(steps) {
					if err := ck.save(env, ml); err != nil {
						return false, fmt.Errorf("checkpoint: %w", err)
					}
				}
			}
			return stop, nil
		},
		Stop: ctl.stop,
	}
	return optim.Stage(opt, sched, hooks), nil
}

// inputKey is the key of state.json's extra that records the encoder's
// input shape, CxHxW, so that evaluation needs no training data.
const inputKey = "input"

// checkpointer is the checkpoint sink's state: where and when the
// optimize stage writes checkpoints, and the step metrics that the
// metrics file may not hold yet (a checkpoint carries them, so that a
// crash right after it loses no line: see reconcileMetrics).
type checkpointer struct {
	dir      string
	every    int
	interval float64 // seconds; 0: no timer

	last    time.Time     // when the last checkpoint was written (or the flow was built)
	cost    time.Duration // how long it took
	pending []pipeline.StepMetrics
}

// record keeps m until the metrics sink has written it.
func (c *checkpointer) record(m pipeline.StepMetrics, ml *metricsLog) {
	if ml == nil {
		return
	}
	c.pending = append(c.pending, m)
	c.trim(ml)
}

// trim drops the metrics the metrics sink has written.
func (c *checkpointer) trim(ml *metricsLog) {
	w := ml.written.Load()
	i := 0
	for i < len(c.pending) && c.pending[i].Step <= w {
		i++
	}
	c.pending = append(c.pending[:0], c.pending[i:]...)
}

// due reports whether a checkpoint is due once steps steps are taken.
func (c *checkpointer) due(steps int64) bool {
	if c.every > 0 && steps%int64(c.every) == 0 {
		return true
	}
	if c.interval <= 0 {
		return false
	}
	wait := max(time.Duration(c.interval*float64(time.Second)), 50*c.cost)
	return time.Since(c.last) >= wait
}

// save writes the checkpoint with the metrics not yet written.
func (c *checkpointer) save(env pipeline.BuildEnv, ml *metricsLog) error {
	start := time.Now()
	var carry []pipeline.StepMetrics
	if ml != nil {
		c.trim(ml)
		carry = c.pending
	}
	if err := saveCheckpoint(env, c.dir, carry); err != nil {
		return err
	}
	c.last, c.cost = time.Now(), time.Since(start)
	return nil
}

// nonFinite returns the index of the first NaN or ±Inf in v. It sums
// v[i]−v[i] in four lanes (0 for a finite value, NaN otherwise), which the
// CPU pipelines, and looks for the index only when a lane is not 0.
func nonFinite(v []float32) (int, bool) {
	var a0, a1, a2, a3 float32
	i := 0
	for ; i+4 <= len(v); i += 4 {
		a0 += v[i] - v[i]
		a1 += v[i+1] - v[i+1]
		a2 += v[i+2] - v[i+2]
		a3 += v[i+3] - v[i+3]
	}
	for ; i < len(v); i++ {
		a0 += v[i] - v[i]
	}
	if a0 == 0 && a1 == 0 && a2 == 0 && a3 == 0 {
		return 0, false
	}
	for i, x := range v {
		if x-x != 0 { // NaN - NaN and Inf - Inf are NaN; a finite x gives 0
			return i, true
		}
	}
	return 0, false
}

// finiteWeights checks that the encoder's (and the key encoder's)
// parameters and BatchNorm statistics are finite after a step.
func finiteWeights(pool *encode.Pool) error {
	for _, w := range []*encode.Weights{pool.Weights(), pool.KeyWeights()} {
		if w == nil {
			continue
		}
		for _, set := range [][]*encode.Tensor{w.Params, w.Buffers} {
			for _, t := range set {
				if i, ok := nonFinite(t.Data); ok {
					who := "the encoder"
					if w == pool.KeyWeights() {
						who = "the key encoder"
					}
					return fmt.Errorf("%s's %s[%d] is %v: the weights diverged (lower the learning rate)", who, t.Name, i, t.Data[i])
				}
			}
		}
	}
	return nil
}

// stateSlices returns the tensors of state whose names start with prefix,
// as the flat slices the stages' Load methods take.
func stateSlices(state map[string]safetensors.Tensor, prefix string) map[string][]float32 {
	out := make(map[string][]float32)
	for name, t := range state {
		if strings.HasPrefix(name, prefix) {
			out[name] = t.F32
		}
	}
	return out
}

func addState(dst map[string]safetensors.Tensor, state map[string][]float32) {
	for name, v := range state {
		dst[name] = safetensors.Tensor{Shape: []int{len(v)}, F32: v}
	}
}

// saveCheckpoint writes the training state as it stands between steps:
// from the optimize stage once a step is complete, or once the flow has
// ended. The encoder's BatchNorm statistics are those of the last complete
// step (see encode.Pool.Saved), not of a forward pass run ahead. carry are
// the step metrics the metrics file may still lack.
func saveCheckpoint(env pipeline.BuildEnv, dir string, carry []pipeline.StepMetrics) error {
	pool, ok := env.Shared[sharedEncoder].(*encode.Pool)
	opt, ok2 := env.Shared[sharedOptim].(optim.Optimizer)
	if !ok || !ok2 {
		return errors.New("checkpoint: the flow has no encoder and optimizer")
	}
	model, key := pool.Saved("key.")
	state := map[string]safetensors.Tensor{}
	for n, t := range key {
		state[n] = t
	}
	addState(state, opt.State())
	if q, ok := env.Shared[sharedQueue].(*queue.Queue); ok {
		addState(state, q.State())
	}
	plan, _ := env.Shared[sharedPlan].(Plan)
	spec, _ := env.Shared[sharedSpec].(*pipeline.Spec)
	steps := int64(opt.Steps())
	info := sinks.CheckpointInfo{Step: steps, Seed: env.Seed,
		Extra: map[string]string{inputKey: fmt.Sprintf("%dx%dx%d", plan.C, plan.H, plan.W)}}
	if plan.Batches > 0 {
		info.Epoch = int(steps / plan.Batches)
		info.Offset = (steps % plan.Batches) * int64(plan.BatchSize)
	}
	if spec != nil {
		if y, err := spec.YAML(); err == nil {
			info.Flow = string(y)
		}
	}
	if len(carry) > 0 {
		b, err := json.Marshal(carry)
		if err != nil {
			return err
		}
		info.Extra[pendingMetricsKey] = string(b)
	}
	return sinks.WriteCheckpoint(dir, sinks.Checkpoint{Model: model, State: state, Info: info})
}

// pendingMetricsKey is the key of state.json's extra that holds, as a
// JSON array, the step metrics the metrics file did not yet hold when the
// checkpoint was written.
const pendingMetricsKey = "pending_metrics"

// summaryName is the name of the metrics file's summary.
func summaryName(metrics string) string {
	return strings.TrimSuffix(metrics, filepath.Ext(metrics)) + ".summary.json"
}

// metricsLog is the metrics sink: it appends the step metrics it receives
// to path, one JSON line each, and writes the summary at the end.
type metricsLog struct {
	path, summary string
	// written is the last step whose line is written (-1: none); the
	// checkpointer reads it to know which lines a checkpoint must carry.
	written atomic.Int64
	// prior are the lines already in the file when a resumed run starts,
	// which the summary counts too.
	prior []pipeline.StepMetrics
}

func (ml *metricsLog) stage() pipeline.Stage {
	return pipeline.StageFunc(func(ctx context.Context, in *pipeline.Inbox, out *pipeline.Outbox) error {
		if err := os.MkdirAll(filepath.Dir(ml.path), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(ml.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		log := sinks.NewMetricsLog(f)
		for _, m := range ml.prior {
			log.Count(m)
		}
		err = pipeline.Each(ctx, in, "metrics", func(m pipeline.StepMetrics) error {
			if err := log.Write(m); err != nil {
				return err
			}
			ml.written.Store(m.Step)
			return nil
		})
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = writeSummary(ml.summary, log.Summary())
		}
		return err
	})
}

// writeSummary writes the run's summary (steps, samples, first, last and
// lowest loss, samples/s) beside the metrics log.
func writeSummary(path string, s sinks.MetricsSummary) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
