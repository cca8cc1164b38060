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

// trainingKinds are the kinds of the training step and its sinks, bound
// to t (nil: the kinds as DefaultRegistry holds them, to check specs
// against; building one then fails with needPrepare).
func trainingKinds(t *parts) []pipeline.Kind {
	return []pipeline.Kind{
		{
			Name: "encode", Role: pipeline.RoleStage, Accepts: "batch", Produces: "encoded",
			Doc:       "runs each batch through the encoder's replicas (and MoCo's momentum encoder)",
			NewConfig: func() any { return &encode.StageConfig{} },
			Build: func(cfg any, env pipeline.BuildEnv) (pipeline.Stage, error) {
				if t == nil {
					return nil, errNoTrainer
				}
				return t.buildEncode(cfg.(*encode.StageConfig), env)
			},
		},
		{
			Name: "queue", Role: pipeline.RoleStage, Accepts: "encoded", Produces: "encoded",
			Doc:       "MoCo: adds the queue of earlier keys as negatives, then enqueues the batch's keys",
			NewConfig: func() any { return &queue.Config{} },
			Build: func(cfg any, env pipeline.BuildEnv) (pipeline.Stage, error) {
				if t == nil {
					return nil, errNoTrainer
				}
				return t.buildQueue(cfg.(*queue.Config), env)
			},
		},
		{
			Name: "loss", Role: pipeline.RoleStage, Accepts: "encoded", Produces: "encoded",
			Doc:       "the loss (" + strings.Join(loss.Names(), ", ") + ") and its gradient for the embeddings",
			NewConfig: func() any { return &loss.Config{} },
			Build: func(cfg any, env pipeline.BuildEnv) (pipeline.Stage, error) {
				if t == nil {
					return nil, errNoTrainer
				}
				return t.buildLoss(cfg.(*loss.Config))
			},
		},
		{
			Name: "optimize", Role: pipeline.RoleStage, Accepts: "encoded", Produces: "step",
			Doc:       "back-propagates, steps the optimizer (and MoCo's momentum encoder), reports the step",
			NewConfig: func() any { return &optim.Config{} },
			Build: func(cfg any, env pipeline.BuildEnv) (pipeline.Stage, error) {
				if t == nil {
					return nil, errNoTrainer
				}
				return t.buildOptimize(cfg.(*optim.Config))
			},
		},
		{
			Name: "metrics", Role: pipeline.RoleSink, Accepts: "step",
			Doc:       "writes one JSON line per step to a file of the run folder",
			NewConfig: func() any { return &MetricsConfig{} },
			Build: func(cfg any, env pipeline.BuildEnv) (pipeline.Stage, error) {
				if t == nil {
					return nil, errNoTrainer
				}
				return t.buildMetrics(cfg.(*MetricsConfig))
			},
		},
		{
			Name: "knn", Role: pipeline.RoleSink, Accepts: "step",
			Doc:       "the kNN monitor: weighted-kNN accuracy of the encoder (eval mode, a copy of its weights) every N epochs, to eval.jsonl",
			NewConfig: func() any { return &MonitorConfig{} },
			Build: func(cfg any, env pipeline.BuildEnv) (pipeline.Stage, error) {
				if t == nil {
					return nil, errNoTrainer
				}
				return t.buildMonitor(cfg.(*MonitorConfig))
			},
		},
		{
			Name: "checkpoint", Role: pipeline.RoleSink, Accepts: "step",
			Doc:       "writes checkpoints (model.safetensors, state.safetensors, state.json) to the run folder",
			NewConfig: func() any { return &CheckpointConfig{} },
			Build: func(cfg any, env pipeline.BuildEnv) (pipeline.Stage, error) {
				if t == nil {
					return nil, errNoTrainer
				}
				return t.buildCheckpoint(cfg.(*CheckpointConfig))
			},
		},
	}
}

func (t *parts) buildEncode(c *encode.StageConfig, env pipeline.BuildEnv) (pipeline.Stage, error) {
	if t.encoder != nil {
		return nil, errors.New("a flow has at most one encode stage")
	}
	plan := t.plan
	if plan.BatchSize == 0 || plan.C == 0 {
		return nil, errors.New("encode needs augment and collate before it")
	}
	w, err := encode.NewWeights(c.Config, encode.Input{C: plan.C, H: plan.H, W: plan.W}, rand.New(rand.NewPCG(uint64(env.Seed), 1)))
	if err != nil {
		return nil, err
	}
	ck := t.resume
	if ck != nil {
		if err := w.Load(&safetensors.File{Tensors: ck.Model}, ""); err != nil {
			return nil, fmt.Errorf("resume: %w", err)
		}
	}
	if t.init != nil {
		if err := w.Load(&safetensors.File{Tensors: t.init.Model}, ""); err != nil {
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
	t.encoder = pool
	return pool.Stage(), nil
}

func (t *parts) buildQueue(c *queue.Config, env pipeline.BuildEnv) (pipeline.Stage, error) {
	if t.queue != nil {
		return nil, errors.New("a flow has at most one queue")
	}
	q, err := queue.New(*c, rand.NewPCG(uint64(env.Seed), 2))
	if err != nil {
		return nil, err
	}
	if t.encoder == nil {
		return nil, errors.New("the queue holds the keys of an encoder: put an encode stage (key_encoder: true) before it")
	}
	if out := t.encoder.Weights().Out(); out != q.Dim() {
		return nil, &pipeline.FieldError{Field: "dim", Msg: fmt.Sprintf("the queue holds keys of dimension %d, but the encode stage's embeddings (its out) have %d: set the queue's dim to %d, or the encoder's out to %d",
			q.Dim(), out, out, q.Dim())}
	}
	if t.resume != nil {
		if err := q.Load(stateSlices(t.resume.State, "queue.")); err != nil {
			return nil, fmt.Errorf("resume: %w", err)
		}
	}
	mom, err := c.NewMomentum(int(t.plan.Steps()))
	if err != nil {
		return nil, err
	}
	t.queue, t.momentum = q, mom
	return q.Stage(), nil
}

func (t *parts) buildLoss(c *loss.Config) (pipeline.Stage, error) {
	l, err := loss.New(*c)
	if err != nil {
		return nil, err
	}
	if t.encoder == nil {
		return nil, errors.New("a loss needs the embeddings of an encode stage before it")
	}
	// What the loss's kind needs from the flow, whichever loss it is; the
	// way out is a loss that needs nothing ("ntxent", and any registered
	// since).
	kind, _ := loss.Lookup(c.Type) // known: New validated c
	plain := strings.Join(loss.NeedingNothing(), " or ")
	if kind.Needs.Labels && !t.plan.Labeled {
		other := fmt.Sprintf(", or an unsupervised loss (type: %s)", plain)
		if kind.ReadViews() == 1 {
			other = "" // a classifier has no unsupervised counterpart
		}
		return nil, &pipeline.FieldError{Field: "type", Msg: fmt.Sprintf("%s needs labels, and the source's dataset has none: use a labelled dataset (a Parquet or Arrow label column: source.label_column; IDX labels: source.labels; an image folder's sub-folders)%s", kind.Name, other)}
	}
	if kind.Needs.Queue && t.queue == nil {
		return nil, &pipeline.FieldError{Field: "type", Msg: fmt.Sprintf("%s takes its negatives from a queue: put a queue stage (after an encode stage with key_encoder: true) before the loss, or use type: %s", kind.Name, plain)}
	}
	// The embeddings the encode stage hands on: view 1's, and view 2's
	// unless it runs one view without a key encoder.
	made := 2
	if t.encoder.Views() == 1 && t.encoder.KeyWeights() == nil {
		made = 1
	}
	switch reads := kind.ReadViews(); {
	case reads == 1 && made == 2:
		return nil, &pipeline.FieldError{Field: "type", Msg: fmt.Sprintf("%s reads one view (a classifier's logits), and the encode stage makes two: set the encode stage's views: 1, without key_encoder", kind.Name)}
	case reads == 2 && made == 1:
		return nil, &pipeline.FieldError{Field: "type", Msg: fmt.Sprintf("%s compares two views of each sample, and the encode stage makes one (views: 1): set views: 2 (or leave it out), or use a loss of one view", kind.Name)}
	}
	t.loss = l
	return loss.Stage(l), nil
}

func (t *parts) buildMetrics(c *MetricsConfig) (pipeline.Stage, error) {
	rf := t.run
	if rf == nil || rf.dir == "" {
		return pipeline.StageFunc(discard), nil // no run folder: nothing to write to
	}
	if t.metrics != nil {
		return nil, errors.New("a flow has at most one metrics sink")
	}
	name := c.File
	if name == "" {
		name = "metrics.jsonl"
	}
	ml := &metricsLog{path: rf.addFile(name), summary: rf.addFile(summaryName(name))}
	ml.written.Store(-1)
	t.metrics = ml
	return ml.stage(), nil
}

func (t *parts) buildCheckpoint(c *CheckpointConfig) (pipeline.Stage, error) {
	rf := t.run
	if t.ckpt != nil {
		return nil, errors.New("a flow has at most one checkpoint sink")
	}
	if rf == nil || rf.dir == "" {
		return pipeline.StageFunc(discard), nil // no run folder: nothing to write to
	}
	rf.ckpt = c.Dir
	if rf.ckpt == "" {
		rf.ckpt = "checkpoint"
	}
	ck := &checkpointer{t: t, dir: rf.checkpointDir(), every: c.Every, interval: DefaultCheckpointSeconds, last: time.Now()}
	if c.Seconds != nil {
		ck.interval = *c.Seconds
	}
	t.ckpt = ck
	return ck.stage(), nil
}

func (t *parts) buildOptimize(c *optim.Config) (pipeline.Stage, error) {
	plan := t.plan
	pool := t.encoder
	if pool == nil {
		return nil, errors.New("optimize trains an encoder: put an encode stage (and a loss) before it")
	}
	if t.loss == nil {
		return nil, errors.New("optimize needs the gradient of a loss: put a loss stage between encode and optimize")
	}
	if t.opt != nil {
		return nil, errors.New("a flow has at most one optimize stage")
	}
	ctl := t.control // set by Prepare
	opt, err := optim.New(*c, pool.Params())
	if err != nil {
		return nil, err
	}
	if t.resume != nil {
		if err := opt.Load(stateSlices(t.resume.State, "optim.")); err != nil {
			return nil, fmt.Errorf("resume: %w", err)
		}
	}
	sched, err := c.NewSchedule(int(plan.Steps()))
	if err != nil {
		return nil, err
	}
	t.opt = opt
	mom := t.momentum
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
		// The step is complete (the MoCo queue has its keys): the state is
		// the step's. The encoder has not yet run the next batch, so its
		// BatchNorm statistics are the step's.
		Done: func(m *pipeline.StepMetrics) (bool, error) {
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
			stop := ctl.maxSteps > 0 && steps >= ctl.maxSteps
			t.giveState(m, steps, stop || steps >= plan.Steps())
			return stop, nil
		},
		Stop: ctl.stop,
	}
	return optim.Stage(opt, sched, hooks), nil
}

// giveState hands m a copy of the state (m.State) when a sink asks for
// the state of the step that makes steps steps (last: the run's last
// step): the kNN monitor at the epochs it evaluates, the checkpoint sink
// when a checkpoint is due, a sink of the user's when it wants one.
//
// The last step's checkpoint is Job.Run's, once the sinks have written
// all they hold: a crash before it resumes from the step before and takes
// the last step again. A checkpoint also waits for the kNN records of
// earlier steps: their weights are gone once it replaces the last.
func (t *parts) giveState(m *pipeline.StepMetrics, steps int64, last bool) {
	if t.ckpt != nil {
		t.ckpt.record(*m)
	}
	knn := t.monitor != nil && t.monitor.wants(steps)
	ckpt := t.ckpt != nil && !last && (t.monitor == nil || t.monitor.settled(steps)) && t.ckpt.wants(steps)
	other := false
	for _, w := range t.wanters {
		if w.WantsState(steps) {
			other = true
		}
	}
	if !knn && !ckpt && !other {
		return
	}
	m.State = t.state()
	if ckpt {
		t.ckpt.hold(m.State)
	}
}

// inputKey is the key of state.json's extra that records the encoder's
// input shape, CxHxW, so that evaluation needs no training data.
const inputKey = "input"

// checkpointer is the checkpoint sink: it writes the states it asked the
// optimize stage for, with the step metrics that the metrics file may not
// hold yet (a checkpoint carries them, so that a crash right after it
// loses no line: see reconcileMetrics), and the last step's state when
// the job ends (see Job.Run).
//
// One state at a time is on its way: the optimize stage asks for the next
// only once the last is written, so a checkpoint every step overlaps its
// write with the next step and skips none. A state asked for and not yet
// written when the flow fails is written by Job.Run (flush): the last good
// state is never lost to a failure after it.
type checkpointer struct {
	t        *parts
	dir      string
	every    int
	interval float64 // seconds; 0: no timer

	mu      sync.Mutex             // guards the fields below, shared with the optimize stage and Job.Run
	last    time.Time              // when the last checkpoint was written (or the flow was built)
	cost    time.Duration          // how long it took
	held    *pipeline.StepState    // asked for and not yet written
	writing bool                   // the sink is writing held
	written chan struct{}          // closed once held is written, or the sink has ended
	ended   bool                   // the sink has ended
	pending []pipeline.StepMetrics // step records the metrics file may lack, recorded by the optimize stage
}

// wants reports whether a checkpoint is due once steps steps are taken.
// The optimize stage calls it between steps. A checkpoint due by count
// (every) waits for the write of the last state asked for, if it is still
// going on; one due by the timer is not due while a state is on its way.
func (c *checkpointer) wants(steps int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return false
	}
	byCount := c.every > 0 && steps%int64(c.every) == 0
	if !byCount && (c.held != nil || !c.dueByTime()) {
		return false
	}
	if c.held != nil {
		w := c.written
		c.mu.Unlock()
		<-w
		c.mu.Lock()
	}
	return !c.ended && c.held == nil
}

// record keeps m, the record of a step just taken, until the metrics
// sink has written it, so that a checkpoint can carry it. The optimize
// stage calls it after every step.
func (c *checkpointer) record(m pipeline.StepMetrics) {
	ml := c.t.metrics
	if ml == nil {
		return
	}
	m.State = nil
	c.mu.Lock()
	defer c.mu.Unlock()
	w := ml.written.Load()
	i := 0
	for i < len(c.pending) && c.pending[i].Step <= w {
		i++
	}
	c.pending = append(c.pending[:0], c.pending[i:]...)
	c.pending = append(c.pending, m)
}

// hold notes s as the state the sink is to write.
func (c *checkpointer) hold(s *pipeline.StepState) {
	c.mu.Lock()
	c.held, c.written = s, make(chan struct{})
	c.mu.Unlock()
}

// dueByTime reports whether the timer makes a checkpoint due. c.mu is
// held.
func (c *checkpointer) dueByTime() bool {
	if c.interval <= 0 {
		return false
	}
	wait := max(time.Duration(c.interval*float64(time.Second)), 50*c.cost)
	return time.Since(c.last) >= wait
}

// stage is the checkpoint sink.
func (c *checkpointer) stage() pipeline.Stage {
	return pipeline.StageFunc(func(ctx context.Context, in *pipeline.Inbox, out *pipeline.Outbox) error {
		defer func() {
			c.mu.Lock()
			c.ended = true
			if c.held != nil {
				if c.writing {
					c.held = nil // a panic during its write: Job.Run does not try again
				}
				close(c.written)
			}
			c.mu.Unlock()
		}()
		return pipeline.Each(ctx, in, "checkpoint", func(m pipeline.StepMetrics) error {
			s := m.State
			c.mu.Lock()
			asked := s != nil && s == c.held
			c.writing = asked
			c.mu.Unlock()
			if !asked {
				return nil
			}
			err := c.save(s)
			c.mu.Lock()
			c.held, c.writing = nil, false
			close(c.written)
			c.mu.Unlock()
			if err != nil {
				return fmt.Errorf("checkpoint after step %d: %w", s.Steps, err)
			}
			return nil
		})
	})
}

// flush writes the state asked for and not yet written, if any, once the
// flow has ended.
func (c *checkpointer) flush() error {
	c.mu.Lock()
	s := c.held
	c.held = nil
	c.mu.Unlock()
	if s == nil {
		return nil
	}
	return c.save(s)
}

// save writes the checkpoint of s with the step metrics of its steps
// that the metrics sink has not yet written. It runs on the sink's
// goroutine, or once the flow has ended.
func (c *checkpointer) save(s *pipeline.StepState) error {
	start := time.Now()
	var carry []pipeline.StepMetrics
	if ml := c.t.metrics; ml != nil {
		w := ml.written.Load()
		c.mu.Lock()
		for _, m := range c.pending {
			if m.Step > w && m.Step < s.Steps {
				carry = append(carry, m)
			}
		}
		c.mu.Unlock()
	}
	ck, err := c.t.checkpoint(s, carry)
	if err != nil {
		return err
	}
	if err := sinks.WriteCheckpoint(c.dir, ck); err != nil {
		return err
	}
	c.mu.Lock()
	c.last, c.cost = time.Now(), time.Since(start)
	c.mu.Unlock()
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
