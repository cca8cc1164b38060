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
	sharedRunDir   = "run_dir"  // string, set by Prepare
	sharedResume   = "resume"   // *sinks.Checkpoint, set by Prepare
	sharedSpec     = "spec"     // *pipeline.Spec, set by Prepare
	sharedEncoder  = "encoder"  // *encode.Pool, set by encode
	sharedQueue    = "queue"    // *queue.Queue, set by queue
	sharedMomentum = "momentum" // *queue.Momentum, set by queue
	sharedOptim    = "optim"    // optim.Optimizer, set by optimize
	sharedCkpt     = "ckpt"     // *checkpointer, set by the checkpoint sink
	sharedLoss     = "loss"     // loss.Loss, set by loss
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

// CheckpointConfig is the config of the "checkpoint" sink.
type CheckpointConfig struct {
	// Dir is the checkpoint folder, relative to the run folder. Default
	// "checkpoint".
	Dir string `yaml:"dir"`
	// Every writes a checkpoint every that many steps (0: only at the end
	// and when interrupted).
	Every int `yaml:"every"`
}

// Validate checks c.
func (c CheckpointConfig) Validate() error {
	if c.Every < 0 {
		return &pipeline.FieldError{Field: "every", Msg: fmt.Sprintf("must be ≥ 0, got %d", c.Every)}
	}
	if filepath.IsAbs(c.Dir) || strings.HasPrefix(filepath.Clean(c.Dir), "..") {
		return &pipeline.FieldError{Field: "dir", Msg: fmt.Sprintf("%q must be a folder inside the run folder", c.Dir)}
	}
	return nil
}

// MetricsConfig is the config of the "metrics" sink.
type MetricsConfig struct {
	// File is the JSON-lines file, relative to the run folder. Default
	// "metrics.jsonl".
	File string `yaml:"file"`
}

// Validate checks c.
func (c MetricsConfig) Validate() error {
	if filepath.IsAbs(c.File) || strings.HasPrefix(filepath.Clean(c.File), "..") {
		return &pipeline.FieldError{Field: "file", Msg: fmt.Sprintf("%q must be a file inside the run folder", c.File)}
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
				pool, err := encode.NewPool(w, plan.BatchSize, c.Replicas, c.KeyEncoder)
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
				dir, _ := env.Shared[sharedRunDir].(string)
				if dir == "" {
					return pipeline.StageFunc(discard), nil // no run folder: nothing to write to
				}
				name := c.File
				if name == "" {
					name = "metrics.jsonl"
				}
				return metricsFileStage(filepath.Join(dir, name)), nil
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
				run, _ := env.Shared[sharedRunDir].(string)
				if _, dup := env.Shared[sharedCkpt]; dup {
					return nil, errors.New("a flow has at most one checkpoint sink")
				}
				if run != "" {
					dir := c.Dir
					if dir == "" {
						dir = "checkpoint"
					}
					env.Shared[sharedCkpt] = &checkpointer{dir: filepath.Join(run, dir), every: c.Every}
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
		Done: func(steps int64) (bool, error) {
			if err := pool.SyncBuffers(); err != nil {
				return false, err
			}
			ctl.steps.Store(steps)
			if mon, ok := env.Shared[sharedMonitor].(*monitor); ok {
				mon.capture(steps, pool.Weights())
			}
			if ck, _ := env.Shared[sharedCkpt].(*checkpointer); ck != nil && ck.every > 0 && steps%int64(ck.every) == 0 {
				if err := saveCheckpoint(env, ck.dir); err != nil {
					return false, fmt.Errorf("checkpoint: %w", err)
				}
			}
			return ctl.maxSteps > 0 && steps >= ctl.maxSteps, nil
		},
		Stop: ctl.stop,
	}
	return optim.Stage(opt, sched, hooks), nil
}

// inputKey is the key of state.json's extra that records the encoder's
// input shape, CxHxW, so that evaluation needs no training data.
const inputKey = "input"

type checkpointer struct {
	dir   string
	every int
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
// step (see encode.Pool.Saved), not of a forward pass run ahead.
func saveCheckpoint(env pipeline.BuildEnv, dir string) error {
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
	return sinks.WriteCheckpoint(dir, sinks.Checkpoint{Model: model, State: state, Info: info})
}

// metricsFileStage writes the step metrics it receives to path.
func metricsFileStage(path string) pipeline.Stage {
	return pipeline.StageFunc(func(ctx context.Context, in *pipeline.Inbox, out *pipeline.Outbox) error {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		log := sinks.NewMetricsLog(f)
		err = log.Stage().Run(ctx, in, out)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = writeSummary(strings.TrimSuffix(path, filepath.Ext(path))+".summary.json", log.Summary())
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
