package flows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sinks/safetensors"
	"github.com/contrastream/contrastream/sources"
	"github.com/contrastream/contrastream/stages/augment"
	"github.com/contrastream/contrastream/stages/encode"
	"github.com/contrastream/contrastream/stages/eval"
)

// EvalData names a labeled dataset that an evaluation reads whole (or one
// shard of), in Index order.
type EvalData struct {
	// Config says which dataset: path (a file, folder or glob, or
	// builtin:train / builtin:test), format, columns.
	sources.Config `yaml:",inline"`
	// Shard and Shards take shard i of n (Index % n == i). Default 0 of 1.
	Shard  int `yaml:"shard"`
	Shards int `yaml:"shards"`
}

// Validate checks the fields that need no file.
func (d EvalData) Validate() error {
	if !IsBuiltin(d.Path) || len(d.Paths) > 0 {
		if err := d.Config.Validate(); err != nil {
			return err
		}
	}
	return d.stream().Validate()
}

func (d EvalData) stream() sources.StreamConfig {
	return sources.StreamConfig{Shard: d.Shard, Shards: d.Shards}
}

// MonitorConfig is the config of the "knn" sink: a weighted-kNN monitor
// of the encoder being trained, at the end of every Every-th epoch (and of
// the last), on a snapshot of its weights in eval mode. Each result is a
// JSON line of File (see EvalRecord) and shows in the progress display.
//
//	sinks:
//	  - {kind: knn, every: 1, k: 200, temperature: 0.1}
//	  - {kind: knn, train: {path: train.parquet}, test: {path: test.parquet}}
//
// The monitor never changes training: the snapshot is a copy of the
// weights and BatchNorm statistics taken between steps, and the monitor
// draws no random numbers. A run with it gives the same weights, bit for
// bit, as one without. It does take time: encoding both splits each time
// (the flow waits for it; about as long as 20 steps on the built-in data).
type MonitorConfig struct {
	// Every is the number of epochs between evaluations; the last epoch
	// is always evaluated. nil means 1; 0 turns the monitor off.
	Every *int `yaml:"every"`
	// KNNConfig is k (default 200) and temperature (default 0.1).
	eval.KNNConfig `yaml:",inline"`
	// Train is the memory. Default: the flow's source (its shard).
	Train *EvalData `yaml:"train"`
	// Test is the queries. Default builtin:test when the flow's source is
	// built-in; otherwise it must be given.
	Test *EvalData `yaml:"test"`
	// File is the JSON-lines file, relative to the run folder. Default
	// "eval.jsonl".
	File string `yaml:"file"`
}

// Validate checks c.
func (c MonitorConfig) Validate() error {
	if c.Every != nil && *c.Every < 0 {
		return &pipeline.FieldError{Field: "every", Msg: fmt.Sprintf("must be ≥ 0 epochs (0: off), got %d", *c.Every)}
	}
	if err := c.KNNConfig.Validate(); err != nil {
		return err
	}
	for _, d := range []struct {
		name string
		d    *EvalData
	}{{"train", c.Train}, {"test", c.Test}} {
		if d.d == nil {
			continue
		}
		if err := d.d.Validate(); err != nil {
			var fe *pipeline.FieldError
			if errors.As(err, &fe) {
				return &pipeline.FieldError{Field: d.name + "." + fe.Field, Msg: fe.Msg}
			}
			return fmt.Errorf("%s: %w", d.name, err)
		}
	}
	if err := localPath(c.File); err != nil {
		return &pipeline.FieldError{Field: "file", Msg: err.Error()}
	}
	return nil
}

// EvalRecord is one evaluation of the kNN monitor, a line of eval.jsonl.
type EvalRecord struct {
	// Epoch is the number of epochs completed, Step the number of steps
	// taken (as a checkpoint's state.json counts them).
	Epoch int   `json:"epoch"`
	Step  int64 `json:"step"`
	// KNNTop1 is the weighted-kNN accuracy on the test split.
	KNNTop1 float64 `json:"knn_top1"`
	K       int     `json:"k"`
	T       float64 `json:"t"`
	// NTrain and NTest are the sizes of the memory and the queries.
	NTrain int `json:"n_train"`
	NTest  int `json:"n_test"`
	// Seconds is the evaluation's wall time.
	Seconds float64 `json:"seconds"`
}

// monitor is the knn sink: it evaluates the copies of the weights that
// it asks the optimize stage for at the epoch ends it judges.
type monitor struct {
	every, epochs int
	batches       int64 // steps an epoch
	knn           eval.KNNConfig
	acfg          augment.Config
	data          [2]sources.Config // opened by the sink when it runs
	streams       [2]sources.StreamConfig
	path          string // "" writes no file
	stop          <-chan struct{}
	// like is a copy of the encoder as built: the shape that a step's
	// state is loaded into.
	like *encode.Weights

	// first, when > 0, is a resumed run's step whose weights (firstW)
	// are evaluated before any step is taken: the checkpoint ended an
	// epoch that eval.jsonl has no record of (the process ended between
	// the two).
	first  int64
	firstW *encode.Weights

	mu sync.Mutex
	// open are the steps whose state the monitor asked for and whose
	// record is not yet written: a checkpoint past one of them waits (see
	// settled), since the weights it judges would be lost with a crash.
	open map[int64]bool
	last atomic.Pointer[EvalRecord]
}

// due reports whether the monitor evaluates once steps steps are taken.
func (m *monitor) due(steps int64) bool {
	if m.batches == 0 || steps%m.batches != 0 {
		return false
	}
	e := int(steps / m.batches)
	return e%m.every == 0 || e == m.epochs
}

// wants reports whether the monitor evaluates the state after steps
// steps, and if so marks that evaluation open. The optimize stage calls it
// between steps.
func (m *monitor) wants(steps int64) bool {
	if !m.due(steps) {
		return false
	}
	m.mu.Lock()
	m.open[steps] = true
	m.mu.Unlock()
	return true
}

// settled reports whether every evaluation of a step before steps has
// its record written.
func (m *monitor) settled(steps int64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for s := range m.open {
		if s < steps {
			return false
		}
	}
	return true
}

// close marks the evaluation of steps as done.
func (m *monitor) close(steps int64) {
	m.mu.Lock()
	delete(m.open, steps)
	m.mu.Unlock()
}

// weights returns the encoder of a step's state.
func (m *monitor) weights(s *pipeline.StepState) (*encode.Weights, error) {
	w := m.like.Clone()
	if err := w.Load(&safetensors.File{Tensors: fromStep(s.Model)}, ""); err != nil {
		return nil, err
	}
	return w, nil
}

// stage is the knn sink: for each step that has a snapshot, it evaluates
// it and writes the record.
func (m *monitor) stage() pipeline.Stage {
	return pipeline.StageFunc(func(ctx context.Context, in *pipeline.Inbox, out *pipeline.Outbox) (err error) {
		var data [2]sources.Dataset
		defer func() {
			for _, ds := range data {
				if ds != nil {
					ds.Close()
				}
			}
		}()
		for i, c := range m.data {
			if data[i], err = OpenDataset(c); err != nil {
				return err
			}
		}
		var log *os.File
		if m.path != "" {
			if err := os.MkdirAll(filepath.Dir(m.path), 0o755); err != nil {
				return err
			}
			if log, err = os.OpenFile(m.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
				return err
			}
			defer func() {
				if cerr := log.Close(); err == nil {
					err = cerr
				}
			}()
		}
		// An interrupted run (Ctrl-C) abandons an evaluation in progress.
		ectx, cancel := context.WithCancel(ctx)
		defer cancel()
		if m.stop != nil {
			go func() {
				select {
				case <-m.stop:
					cancel()
				case <-ectx.Done():
				}
			}()
		}
		// An evaluation abandoned by an interruption stays open (see
		// settled): the run's last checkpoint must not pass it.
		judge := func(steps int64, w *encode.Weights) error {
			if ectx.Err() != nil {
				return nil // interrupted: no record
			}
			rec, err := m.evaluate(ectx, data, w, steps)
			if err != nil {
				if ectx.Err() != nil && ctx.Err() == nil {
					return nil // interrupted: no record
				}
				return fmt.Errorf("knn monitor after step %d: %w", steps, err)
			}
			defer m.close(steps)
			m.last.Store(&rec)
			if log == nil {
				return nil
			}
			b, err := json.Marshal(rec)
			if err != nil {
				return err
			}
			_, err = log.Write(append(b, '\n'))
			return err
		}
		if m.first > 0 {
			if err := judge(m.first, m.firstW); err != nil {
				return err
			}
		}
		return pipeline.Each(ctx, in, "knn", func(s pipeline.StepMetrics) error {
			if s.State == nil || !m.due(s.State.Steps) {
				return nil
			}
			w, err := m.weights(s.State)
			if err != nil {
				return fmt.Errorf("knn monitor after step %d: %w", s.State.Steps, err)
			}
			return judge(s.State.Steps, w)
		})
	})
}

// evaluate runs the kNN of the snapshot w, taken after steps steps.
func (m *monitor) evaluate(ctx context.Context, data [2]sources.Dataset, w *encode.Weights, steps int64) (EvalRecord, error) {
	start := time.Now()
	var feats [2]eval.Features
	for i, ds := range data {
		f, err := featuresOf(ctx, w, ds, m.streams[i], m.acfg, 0, nil)
		if err != nil {
			return EvalRecord{}, err
		}
		if f.N == 0 {
			return EvalRecord{}, fmt.Errorf("%s: no sample decodes", ds.Name())
		}
		feats[i] = f
	}
	r, err := eval.KNN(feats[0], feats[1], m.knn)
	if err != nil {
		return EvalRecord{}, err
	}
	k := m.knn.K
	if k == 0 {
		k = 200
	}
	t := m.knn.TemperatureOrDefault()
	return EvalRecord{Epoch: int(steps / m.batches), Step: steps, KNNTop1: r.Accuracy, K: k, T: t,
		NTrain: feats[0].N, NTest: feats[1].N, Seconds: time.Since(start).Seconds()}, nil
}

// buildMonitor builds the knn sink of a training flow.
func (t *parts) buildMonitor(c *MonitorConfig) (pipeline.Stage, error) {
	if c.Every != nil && *c.Every == 0 {
		return pipeline.StageFunc(discard), nil // off
	}
	plan, spec, pool := t.plan, t.spec, t.encoder
	if pool == nil {
		return nil, errors.New("the knn monitor judges the encoder a flow trains: put it in a flow with an encode stage")
	}
	if t.monitor != nil {
		return nil, errors.New("a flow has at most one knn monitor")
	}
	src, ok := spec.Source.Config.(*DatasetConfig)
	if !ok {
		return nil, errors.New("the knn monitor needs a dataset source")
	}
	train, test := c.Train, c.Test
	if train == nil {
		train = &EvalData{Config: src.Config, Shard: src.Shard, Shards: src.Shards}
		if train.Path == "" && len(train.Paths) == 0 {
			train.Path = BuiltinTrain
		}
	}
	if test == nil {
		if len(src.Paths) > 0 || !(src.Path == "" || IsBuiltin(src.Path)) {
			return nil, &pipeline.FieldError{Field: "test", Msg: fmt.Sprintf("the flow trains on %s, not the built-in data: name the labeled test split to monitor (test: {path: ...}), or turn the monitor off (every: 0)", describeSource(src.Config))}
		}
		test = &EvalData{Config: sources.Config{Path: BuiltinTest}}
	}
	var acfg augment.Config
	for _, s := range spec.Stages {
		if a, ok := s.Config.(*augment.Config); ok {
			acfg = *a
		}
	}
	m := &monitor{every: 1, epochs: plan.Epochs, batches: plan.Batches, knn: c.KNNConfig, acfg: acfg, like: pool.Weights().Clone(), open: map[int64]bool{}}
	if c.Every != nil {
		m.every = *c.Every
	}
	for i, d := range []*EvalData{train, test} {
		field := [2]string{"train", "test"}[i]
		ds, err := OpenDataset(d.Config)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		err = checkFits(context.Background(), pool.Weights(), ds, describeSource(d.Config), acfg)
		if !ds.Labeled() {
			err = fmt.Errorf("%s has no labels: the kNN monitor needs labeled data", ds.Name())
		}
		ds.Close()
		if err != nil {
			return nil, &pipeline.FieldError{Field: field, Msg: err.Error()}
		}
		m.data[i], m.streams[i] = d.Config, d.stream()
	}
	if rf := t.run; rf != nil && rf.dir != "" {
		name := c.File
		if name == "" {
			name = "eval.jsonl"
		}
		m.path = rf.addFile(name)
	}
	m.stop = t.control.stop
	t.monitor = m
	return m.stage(), nil
}

func describeSource(c sources.Config) string {
	if c.Path != "" {
		return c.Path
	}
	return strings.Join(c.Paths, ", ")
}

// LastEval returns the kNN monitor's latest result, or nil before the
// first (or without a monitor). It is safe to call while the job runs.
func (j *Job) LastEval() *EvalRecord {
	m := j.t.monitor
	if m == nil {
		return nil
	}
	return m.last.Load()
}
