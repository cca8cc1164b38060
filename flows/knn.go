package flows

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sinks"
	"github.com/contrastream/contrastream/sinks/safetensors"
	"github.com/contrastream/contrastream/sources"
	"github.com/contrastream/contrastream/stages/augment"
	"github.com/contrastream/contrastream/stages/collate"
	"github.com/contrastream/contrastream/stages/encode"
	"github.com/contrastream/contrastream/stages/eval"
)

// EvalAugment is acfg with every random transform off: the image is only
// resized (to acfg's size), converted and normalised, as a frozen encoder
// sees it for evaluation and export.
func EvalAugment(acfg augment.Config) augment.Config {
	c := acfg
	c.Crop.P, c.FlipP, c.Rotation.P, c.Jitter.P = augment.Float(0), augment.Float(0), augment.Float(0), augment.Float(0)
	c.GrayscaleP, c.Blur.P, c.Solarize.P = 0, 0, 0
	return c
}

// evalBatch is the number of images a frozen encoder takes at once, and
// maxEvalReplicas bounds the replicas that run at once (each holds about
// 1 MB of buffers per 28×28 image of its batch).
const (
	evalBatch       = 128
	maxEvalReplicas = 8
)

// Features runs every sample of ds (in Index order) through the frozen
// encoder w, in eval mode (BatchNorm with its running statistics), after
// EvalAugment(acfg), and returns the backbone features with the labels.
// Samples that do not decode are skipped. progress, when not nil, is
// called with the number of samples done. Up to GOMAXPROCS replicas of the
// encoder run at once, each on a goroutine of its own under
// pipeline.ForEachContext; the result does not depend on their number. A
// panic in a replica stops the others and comes back as the error,
// wrapping a *pipeline.PanicError with the stack.
func Features(ctx context.Context, w *encode.Weights, ds sources.Dataset, acfg augment.Config, progress func(int64)) (eval.Features, error) {
	return featuresOf(ctx, w, ds, sources.StreamConfig{}, acfg, 0, progress)
}

// featuresOf is Features of the samples sc streams (one epoch, in Index
// order unless sc shuffles), on up to workers replicas (0: GOMAXPROCS).
func featuresOf(ctx context.Context, w *encode.Weights, ds sources.Dataset, sc sources.StreamConfig, acfg augment.Config, workers int, progress func(int64)) (eval.Features, error) {
	aug, err := augment.New(EvalAugment(acfg))
	if err != nil {
		return eval.Features{}, err
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, maxEvalReplicas)
	in := w.Input()
	d := w.Features()
	type job struct {
		x    []float32 // evalBatch images
		n    int       // real ones
		feat []float32 // n×d, filled by a worker
	}
	reps := make([]*encode.Replica, 0, workers)
	defer func() {
		for _, r := range reps {
			r.Close()
		}
	}()
	for range workers {
		r, err := encode.NewReplica(w, evalBatch)
		if err != nil {
			return eval.Features{}, err
		}
		reps = append(reps, r)
	}
	jobs := make(chan *job)
	free := make(chan []float32, workers+1) // input buffers: bounded memory
	for range workers + 1 {
		free <- make([]float32, evalBatch*in.Len())
	}
	var (
		progressMu sync.Mutex
		done       atomic.Int64
		batch      []*job // in order
		out        = eval.Features{D: d}
	)
	// produce streams the samples into batches of evalBatch and hands them
	// to the replicas in order; it stops when ctx is cancelled.
	produce := func(ctx context.Context) error {
		var (
			cur *job
			v   pipeline.View
		)
		send := func() error {
			clear(cur.x[cur.n*in.Len():]) // padding rows: eval-mode BatchNorm treats rows alone
			batch = append(batch, cur)
			select {
			case jobs <- cur:
			case <-ctx.Done():
				return context.Cause(ctx)
			}
			cur = nil
			return nil
		}
		err := sources.Each(ctx, ds, sc, func(s pipeline.Sample) error {
			img, err := sources.Decode(s, acfg.MaxPixels)
			if pipeline.IsSkip(err) {
				return nil
			} else if err != nil {
				return err
			}
			if err := aug.View(img, 0, 0, s.Index, 0, &v); err != nil {
				return nil // a bad sample: skipped
			}
			if v.C != in.C || v.H != in.H || v.W != in.W {
				return fmt.Errorf("%s: its view is %d×%d×%d; the encoder takes %s (images of another size or channel count)", s.Origin, v.C, v.H, v.W, in)
			}
			if cur == nil {
				select {
				case x := <-free:
					cur = &job{x: x}
				case <-ctx.Done():
					return context.Cause(ctx)
				}
			}
			copy(cur.x[cur.n*in.Len():], v.Data)
			out.Labels = append(out.Labels, s.Label)
			cur.n++
			if cur.n == evalBatch {
				return send()
			}
			return nil
		})
		if err == nil && cur != nil {
			err = send()
		}
		return err
	}
	// Task 0 produces on the calling goroutine, task i ≥ 1 runs replica
	// i−1 on a goroutine of its own (one goroutine per gorgonia VM). The
	// first failure or panic cancels ctx, so that the producer stops and
	// returns it (context.Cause) as the lowest task's error; closing jobs
	// then ends the other replicas.
	err = pipeline.ForEachContext(ctx, workers+1, workers+1, func(ctx context.Context, _, i int) error {
		if i == 0 {
			defer close(jobs)
			return produce(ctx)
		}
		r := reps[i-1]
		for j := range jobs {
			if testHookReplica != nil {
				testHookReplica(j.n)
			}
			f, err := r.Features(j.x, encode.Eval)
			if err != nil {
				return err
			}
			j.feat = slices.Clone(f[:j.n*d])
			free <- j.x
			if progress != nil {
				progressMu.Lock() // one call at a time, counts in order
				progress(done.Add(int64(j.n)))
				progressMu.Unlock()
			}
		}
		return nil
	})
	if err != nil {
		return eval.Features{}, err
	}
	for _, j := range batch {
		out.Data = append(out.Data, j.feat...)
		out.N += j.n
	}
	return out, nil
}

// testHookReplica, when set (by tests only), is called by a replica of
// featuresOf before it encodes a batch of n samples.
var testHookReplica func(n int)

// KNNConfig says what KNN evaluates.
type KNNConfig struct {
	// Train and Test are the memory and query datasets. Default
	// builtin:train and builtin:test.
	Train, Test sources.Config
	// KNN is k and the temperature (default 200 and 0.1).
	KNN eval.KNNConfig
	// Progress, when set, is called with a phase ("train", "test") and the
	// number of samples encoded.
	Progress func(phase string, done int64)
}

// KNN evaluates the frozen encoder w by weighted kNN: the training split's
// features as memory, the test split's as queries. acfg is the flow's
// augment config (for the size and normalisation).
func KNN(ctx context.Context, w *encode.Weights, acfg augment.Config, cfg KNNConfig) (eval.KNNResult, error) {
	feats, err := splitFeatures(ctx, w, acfg, "knn", [2]sources.Config{cfg.Train, cfg.Test}, cfg.Progress)
	if err != nil {
		return eval.KNNResult{}, err
	}
	return eval.KNN(feats[0], feats[1], cfg.KNN)
}

// splitFeatures returns the features of the train and test datasets srcs
// (default builtin:train and builtin:test), after checking that both are
// labeled and that their images fit the encoder.
func splitFeatures(ctx context.Context, w *encode.Weights, acfg augment.Config, what string, srcs [2]sources.Config, progress func(string, int64)) ([2]eval.Features, error) {
	var (
		feats [2]eval.Features
		dss   [2]sources.Dataset
	)
	defer func() {
		for _, ds := range dss {
			if ds != nil {
				ds.Close()
			}
		}
	}()
	for i, src := range srcs {
		if src.Path == "" && len(src.Paths) == 0 {
			src.Path = [2]string{BuiltinTrain, BuiltinTest}[i]
		}
		ds, err := OpenDataset(src)
		if err != nil {
			return feats, err
		}
		dss[i] = ds
		if !ds.Labeled() {
			return feats, fmt.Errorf("%s: %s has no labels", what, ds.Name())
		}
		if err := checkFits(ctx, w, ds, describeSource(src), acfg); err != nil {
			return feats, fmt.Errorf("%s: %w", what, err)
		}
	}
	for i, ds := range dss {
		phase := [2]string{"train", "test"}[i]
		var pf func(int64)
		if progress != nil {
			pf = func(n int64) { progress(phase, n) }
		}
		var err error
		if feats[i], err = Features(ctx, w, ds, acfg, pf); err != nil {
			return feats, err
		}
		if feats[i].N == 0 {
			return feats, fmt.Errorf("%s: %s: no sample decodes", what, ds.Name())
		}
	}
	return feats, nil
}

// checkFits reports whether the first sample of ds that decodes becomes a
// view of the shape w takes, and says what differs if not.
func checkFits(ctx context.Context, w *encode.Weights, ds sources.Dataset, name string, acfg augment.Config) error {
	aug, err := augment.New(EvalAugment(acfg))
	if err != nil {
		return err
	}
	var v pipeline.View
	err = sources.Each(ctx, ds, sources.StreamConfig{}, func(s pipeline.Sample) error {
		img, err := sources.Decode(s, acfg.MaxPixels)
		if err != nil {
			return nil
		}
		if err := aug.View(img, 0, 0, s.Index, 0, &v); err != nil {
			return nil
		}
		return errFound
	})
	if err != nil && !errors.Is(err, errFound) {
		return err
	}
	if err == nil {
		return fmt.Errorf("%s: no sample decodes", name)
	}
	in := w.Input()
	if v.C != in.C || v.H != in.H || v.W != in.W {
		return fmt.Errorf("%s: its images become %d×%d×%d views, but the encoder takes %s (channels×height×width): evaluate on data of the size and channel count the encoder was trained on",
			name, v.C, v.H, v.W, in)
	}
	return nil
}

// Encoder is what a checkpoint or a flow spec says the encoder is: its
// weights (loaded from the checkpoint, or freshly initialised from the
// flow's seed) and the flow's augment config.
type Encoder struct {
	Weights *encode.Weights
	Augment augment.Config
	Spec    *pipeline.Spec
	// Checkpoint is the folder it was loaded from and Step the training
	// step it was saved at ("" and 0 for a random-init encoder).
	Checkpoint string
	Step       int64
}

// BatchSize is the batch size of the flow's collate stage (its default
// when the flow leaves it out).
func (e *Encoder) BatchSize() int {
	for _, s := range e.Spec.Stages {
		if c, ok := s.Config.(*collate.Config); ok && c.BatchSize > 0 {
			return c.BatchSize
		}
	}
	return collate.DefaultBatchSize
}

// LoadEncoder reads the checkpoint folder dir: the flow it was trained with
// (state.json) and the weights (model.safetensors). A folder that is not a
// complete checkpoint, one of another format version, a flow this version
// cannot read, or weights that are not those of the flow's encoder (a
// tensor missing, or of another shape) are errors that say which.
func LoadEncoder(dir string) (*Encoder, error) {
	ck, err := sinks.ReadCheckpoint(dir)
	if err != nil {
		return nil, err
	}
	written := fmt.Sprintf("written by contrastream %s, %s", ck.Info.Versions["contrastream"], ck.Info.Versions["go"])
	if strings.TrimSpace(ck.Info.Flow) == "" {
		return nil, fmt.Errorf("checkpoint %s: %s records no flow (%s), so the encoder it holds is unknown", dir, sinks.InfoFile, written)
	}
	spec, err := pipeline.ParseSpec([]byte(UpgradeRecordedFlow(ck.Info.Flow)), filepath.Join(dir, sinks.InfoFile), nil, nil)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: its flow (%s) does not parse in this version: %w", dir, written, err)
	}
	// The encoder's input shape: recorded by this version's checkpoints;
	// for older ones, what the flow's data make (which must be readable).
	var in *encode.Input
	if s := ck.Info.Extra[inputKey]; s != "" {
		var c, h, w int
		if _, err := fmt.Sscanf(s, "%dx%dx%d", &c, &h, &w); err != nil {
			return nil, fmt.Errorf("checkpoint %s: %s: input %q is not CxHxW", dir, sinks.InfoFile, s)
		}
		in = &encode.Input{C: c, H: h, W: w}
	}
	e, err := newEncoder(spec, in)
	if err != nil {
		if in == nil {
			return nil, fmt.Errorf("checkpoint %s: the encoder's input shape comes from its flow's data, which cannot be read: %w", dir, err)
		}
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	if err := e.Weights.Load(&safetensors.File{Tensors: ck.Model}, ""); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %s does not hold the encoder its flow describes: %w", dir, sinks.ModelFile, err)
	}
	e.Checkpoint, e.Step = dir, ck.Info.Step
	return e, nil
}

// NewEncoder makes the encoder of spec, initialised from its seed as
// training starts (the random-init baseline).
func NewEncoder(spec *pipeline.Spec) (*Encoder, error) {
	return newEncoder(spec, nil)
}

// newEncoder is NewEncoder for images of shape in, or of the shape the
// flow's data make (PlanOf) when in is nil.
func newEncoder(spec *pipeline.Spec, in *encode.Input) (*Encoder, error) {
	var (
		ecfg *encode.StageConfig
		acfg augment.Config
	)
	for _, s := range spec.Stages {
		switch c := s.Config.(type) {
		case *encode.StageConfig:
			ecfg = c
		case *augment.Config:
			acfg = *c
		}
	}
	if ecfg == nil {
		return nil, fmt.Errorf("flow %q has no encode stage", spec.Name)
	}
	if in == nil {
		plan, err := PlanOf(spec)
		if err != nil {
			return nil, err
		}
		in = &encode.Input{C: plan.C, H: plan.H, W: plan.W}
	}
	w, err := encode.NewWeights(ecfg.Config, *in, rand.New(rand.NewPCG(uint64(spec.Seed), 1)))
	if err != nil {
		return nil, err
	}
	return &Encoder{Weights: w, Augment: acfg, Spec: spec}, nil
}
