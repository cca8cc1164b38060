package flows

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sinks"
	"github.com/contrastream/contrastream/sinks/safetensors"
	"github.com/contrastream/contrastream/sources"
	"github.com/contrastream/contrastream/stages/augment"
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

// evalBatch is the number of images a frozen encoder takes at once.
const evalBatch = 256

// Features runs every sample of ds (in Index order) through the frozen
// encoder w, in eval mode (BatchNorm with its running statistics), after
// EvalAugment(acfg), and returns the backbone features with the labels.
// Samples that do not decode are skipped. progress, when not nil, is
// called with the number of samples done.
func Features(ctx context.Context, w *encode.Weights, ds sources.Dataset, acfg augment.Config, progress func(int64)) (eval.Features, error) {
	aug, err := augment.New(EvalAugment(acfg))
	if err != nil {
		return eval.Features{}, err
	}
	in := w.Input()
	r, err := encode.NewReplica(w, evalBatch)
	if err != nil {
		return eval.Features{}, err
	}
	defer r.Close()
	out := eval.Features{D: w.Features()}
	x := make([]float32, evalBatch*in.Len())
	n := 0
	var done int64
	flush := func() error {
		if n == 0 {
			return nil
		}
		clear(x[n*in.Len():]) // padding rows: eval-mode BatchNorm treats rows alone
		f, err := r.Features(x, encode.Eval)
		if err != nil {
			return err
		}
		out.Data = append(out.Data, f[:n*out.D]...)
		out.N += n
		n = 0
		if progress != nil {
			progress(done)
		}
		return nil
	}
	var v pipeline.View
	err = sources.Each(ctx, ds, sources.StreamConfig{}, func(s pipeline.Sample) error {
		img, err := sources.Decode(s, acfg.MaxPixels)
		if pipeline.IsSkip(err) {
			return nil
		} else if err != nil {
			return err
		}
		if err := aug.View(img, 0, 0, s.Index, 0, &v); err != nil {
			return pipeline.Skip(s.Origin, err)
		}
		if v.C != in.C || v.H != in.H || v.W != in.W {
			return fmt.Errorf("%s: its view is %d×%d×%d; the encoder takes %s (images of another size or channel count)", s.Origin, v.C, v.H, v.W, in)
		}
		copy(x[n*in.Len():], v.Data)
		out.Labels = append(out.Labels, s.Label)
		n++
		done++
		if n == evalBatch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	return out, err
}

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
	if cfg.Train.Path == "" && len(cfg.Train.Paths) == 0 {
		cfg.Train.Path = BuiltinTrain
	}
	if cfg.Test.Path == "" && len(cfg.Test.Paths) == 0 {
		cfg.Test.Path = BuiltinTest
	}
	var feats [2]eval.Features
	for i, src := range []sources.Config{cfg.Train, cfg.Test} {
		ds, err := OpenDataset(src)
		if err != nil {
			return eval.KNNResult{}, err
		}
		if !ds.Labeled() {
			ds.Close()
			return eval.KNNResult{}, fmt.Errorf("knn: %s has no labels", ds.Name())
		}
		phase := [2]string{"train", "test"}[i]
		var progress func(int64)
		if cfg.Progress != nil {
			progress = func(n int64) { cfg.Progress(phase, n) }
		}
		feats[i], err = Features(ctx, w, ds, acfg, progress)
		ds.Close()
		if err != nil {
			return eval.KNNResult{}, err
		}
	}
	return eval.KNN(feats[0], feats[1], cfg.KNN)
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

// LoadEncoder reads the checkpoint folder dir: the flow it was trained with
// (state.json) and the weights (model.safetensors).
func LoadEncoder(dir string) (*Encoder, error) {
	ck, err := sinks.ReadCheckpoint(dir)
	if err != nil {
		return nil, err
	}
	spec, err := pipeline.ParseSpec([]byte(ck.Info.Flow), dir+"/state.json", nil, nil)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: its flow: %w", dir, err)
	}
	e, err := NewEncoder(spec)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	if err := e.Weights.Load(&safetensors.File{Tensors: ck.Model}, ""); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	e.Checkpoint, e.Step = dir, ck.Info.Step
	return e, nil
}

// NewEncoder makes the encoder of spec, initialised from its seed as
// training starts (the random-init baseline).
func NewEncoder(spec *pipeline.Spec) (*Encoder, error) {
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
	plan, err := PlanOf(spec)
	if err != nil {
		return nil, err
	}
	w, err := encode.NewWeights(ecfg.Config, encode.Input{C: plan.C, H: plan.H, W: plan.W}, rand.New(rand.NewPCG(uint64(spec.Seed), 1)))
	if err != nil {
		return nil, err
	}
	return &Encoder{Weights: w, Augment: acfg, Spec: spec}, nil
}
