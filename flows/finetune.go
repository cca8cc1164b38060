package flows

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sinks"
	"github.com/contrastream/contrastream/sources"
	"github.com/contrastream/contrastream/stages/augment"
	"github.com/contrastream/contrastream/stages/collate"
	"github.com/contrastream/contrastream/stages/encode"
	"github.com/contrastream/contrastream/stages/eval"
	"github.com/contrastream/contrastream/stages/optim"
)

// FineTuneConfig says how FineTune trains. Its zero value (but Epochs)
// is the finetune flow's (finetune.yaml), the contrastive flows' recipe:
// their batch size, augmentation and optimizer (SGD, lr 0.06, momentum
// 0.9, weight decay 5e-4, cosine decay over the run) and their limit of
// 100 bad samples.
type FineTuneConfig struct {
	// Train and Test are the datasets the encoder and classifier are
	// trained and tested on. Default builtin:train and builtin:test.
	Train, Test sources.Config
	// Epochs is the number of passes over Train, ≥ 1.
	Epochs int
	// BatchSize is the number of samples a step; the last partial batch
	// of each epoch is dropped. Default 256.
	BatchSize int
	// Optim is the optimizer of the encoder and classifier.
	Optim optim.Config
	// Seed derives the classifier's initial weights, the order of each
	// epoch and each view's augmentation.
	Seed int64
	// Workers is how many shards of the batch the encoder computes at
	// once (the encode stage's workers), in [0, encode.MaxWorkers].
	// Default (0): GOMAXPROCS. It changes only the speed: the shards and
	// the BatchNorm statistics (over the whole batch) are fixed by the
	// batch size, so the result is the same bytes for any Workers and
	// GOMAXPROCS.
	Workers int
	// MaxBadSamples is how many bad samples (images that do not decode)
	// training skips, and counts, before it fails; -1 means no limit.
	// nil means the flow's, 100.
	MaxBadSamples *int
	// Progress, when set, is called after each step, and with phase
	// "test" while the test split is encoded.
	Progress func(p FineTuneProgress)
}

// FineTuneProgress is where a fine-tune stands.
type FineTuneProgress struct {
	// Phase is "train" or "test".
	Phase string
	// Step and Steps count training steps; Epoch is the current one
	// (from 0). Loss and Accuracy are the last step's mean cross-entropy
	// and top-1 on its (augmented) batch.
	Step, Steps    int64
	Epoch          int
	Loss, Accuracy float64
	// Encoded counts the test samples encoded (phase "test").
	Encoded int64
}

// FineTuneResult is the outcome of FineTune.
type FineTuneResult struct {
	// Accuracy is the test top-1; Correct and Total count the test
	// samples.
	Accuracy       float64
	Correct, Total int
	// Losses is each step's mean training cross-entropy.
	Losses []float64
	// Classes is the number of classes (the largest label + 1).
	Classes int
	// Weights is the fine-tuned encoder: the backbone, head.0 the identity
	// (see FineTune) and head.2 the classifier (Out = Classes).
	Weights *encode.Weights
}

// FineTune trains the encoder w (not modified: a copy) together with a
// linear classifier on its features, by softmax cross-entropy on one
// augmented view (acfg, the flow's augmentation) of each training sample,
// then reports the test top-1 in eval mode (no augmentation, BatchNorm's
// running statistics). From a random-init encoder (NewEncoder) it is the
// plain supervised cross-entropy baseline.
//
// Training is the finetune flow (finetune.yaml) run as a training job
// (Prepare, Job.Run), with no run folder: the training step of the
// contrastive flows, with one view and the crossentropy loss. So the same
// rules hold: BatchNorm statistics over the whole batch and fixed shards,
// so that the result does not depend on Workers or GOMAXPROCS; bad samples
// skipped and counted up to MaxBadSamples, then an error; a non-finite
// loss or weight stops training with an error that names the step.
//
// The classifier is the encoder's own head, so that the encoder
// back-propagates it unchanged: a copy of w with Hidden = its feature size
// and Out = the number of classes, whose head.0 is fixed to the identity
// with no bias (frozen: the encode stage's freeze, so the optimizer never
// gets it). The features are non-negative (the global average pool of a
// ReLU), so head.0's ReLU passes them unchanged, and head.2 is exactly a
// linear classifier on the features. Its weights start as PyTorch's
// nn.Linear does, from Seed.
//
// Cost: a training step is the contrastive flows' with one view through
// the encoder instead of two (the augment stage still makes two views, of
// which the encoder reads the first); the training set streams, one epoch
// at a time, as in training.
func FineTune(ctx context.Context, w *encode.Weights, acfg augment.Config, cfg FineTuneConfig) (FineTuneResult, error) {
	if cfg.Epochs < 1 {
		return FineTuneResult{}, fmt.Errorf("finetune: epochs %d, want at least 1", cfg.Epochs)
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = collate.DefaultBatchSize
	}
	if cfg.BatchSize < 1 {
		return FineTuneResult{}, fmt.Errorf("finetune: batch size %d, want at least 1", cfg.BatchSize)
	}
	if err := cfg.Optim.Validate(); err != nil {
		return FineTuneResult{}, fmt.Errorf("finetune: %w", err)
	}
	if cfg.Workers < 0 || cfg.Workers > encode.MaxWorkers {
		return FineTuneResult{}, fmt.Errorf("finetune: %d workers, want 0 (GOMAXPROCS) to %d", cfg.Workers, encode.MaxWorkers)
	}
	if m := cfg.MaxBadSamples; m != nil && *m < -1 {
		return FineTuneResult{}, fmt.Errorf("finetune: max bad samples %d, want ≥ 0, or -1 for no limit", *m)
	}
	srcs := [2]sources.Config{cfg.Train, cfg.Test}
	var dss [2]sources.Dataset
	defer func() {
		for _, ds := range dss {
			if ds != nil {
				ds.Close()
			}
		}
	}()
	classes := 0
	for i, src := range srcs {
		if src.Path == "" && len(src.Paths) == 0 {
			src.Path = [2]string{BuiltinTrain, BuiltinTest}[i]
			srcs[i] = src
		}
		ds, err := OpenDataset(src)
		if err != nil {
			return FineTuneResult{}, err
		}
		dss[i] = ds
		if !ds.Labeled() {
			return FineTuneResult{}, fmt.Errorf("finetune: %s has no labels", ds.Name())
		}
		if err := checkFits(ctx, w, ds, describeSource(src), acfg); err != nil {
			return FineTuneResult{}, fmt.Errorf("finetune: %w", err)
		}
		if i == 0 {
			if classes, err = countClasses(ctx, ds); err != nil {
				return FineTuneResult{}, err
			}
		}
	}
	ft, err := classifierWeights(w, classes, cfg.Seed)
	if err != nil {
		return FineTuneResult{}, err
	}
	spec, err := fineTuneSpec(ft, acfg, srcs[0], cfg)
	if err != nil {
		return FineTuneResult{}, err
	}
	res := FineTuneResult{Classes: classes, Weights: ft}
	var steps int64
	jo := JobOptions{InitFrom: &sinks.Checkpoint{Model: ft.SafeTensors("")}, onStep: func(m pipeline.StepMetrics) {
		res.Losses = append(res.Losses, m.Loss)
		if cfg.Progress != nil {
			cfg.Progress(FineTuneProgress{Phase: "train", Step: m.Step + 1, Steps: steps, Epoch: m.Epoch, Loss: m.Loss, Accuracy: m.Accuracy})
		}
	}}
	job, err := Prepare(spec, pipeline.Options{}, jo)
	if err != nil {
		return FineTuneResult{}, fmt.Errorf("finetune: %w", err)
	}
	steps = job.Plan.Steps()
	if err := job.Run(ctx); err != nil {
		return FineTuneResult{}, fmt.Errorf("finetune: %w", err)
	}
	// The job's encoder started from ft's weights and trained them; its
	// Weights hold the last step's parameters and running statistics.
	res.Weights = job.Encoder().Weights()
	var pf func(int64)
	if cfg.Progress != nil {
		pf = func(n int64) { cfg.Progress(FineTuneProgress{Phase: "test", Encoded: n}) }
	}
	test, err := Features(ctx, res.Weights, dss[1], acfg, pf)
	if err != nil {
		return FineTuneResult{}, err
	}
	res.Total = test.N
	pred := eval.Predict(test.Data, test.N, test.D, res.Weights.Tensor("head.2.weight").Data, res.Weights.Tensor("head.2.bias").Data)
	for i, p := range pred {
		if p == test.Labels[i] {
			res.Correct++
		}
	}
	if res.Total > 0 {
		res.Accuracy = float64(res.Correct) / float64(res.Total)
	}
	return res, nil
}

// fineTuneSpec returns the finetune flow for cfg: trained on train with
// the augmentation acfg, its encode stage the classifier ft's (its
// architecture, Hidden and Out; one view; head.0 frozen), with cfg's
// batch size, optimizer, seed, epochs, workers and bad-sample limit.
func fineTuneSpec(ft *encode.Weights, acfg augment.Config, train sources.Config, cfg FineTuneConfig) (*pipeline.Spec, error) {
	spec, err := Load("finetune", nil)
	if err != nil {
		return nil, err
	}
	spec.Seed, spec.Epochs = cfg.Seed, cfg.Epochs
	if cfg.MaxBadSamples != nil {
		spec.MaxBadSamples = *cfg.MaxBadSamples
	}
	src, ok := spec.Source.Config.(*DatasetConfig)
	if !ok {
		return nil, fmt.Errorf("finetune: the flow's source is a %T, want a dataset", spec.Source.Config)
	}
	src.Config = train
	for _, st := range spec.Stages {
		switch c := st.Config.(type) {
		case *augment.Config:
			*c = acfg
		case *collate.Config:
			c.BatchSize, c.Last = cfg.BatchSize, collate.Drop
		case *encode.StageConfig:
			*c = encode.StageConfig{Config: ft.Config(), Views: 1, Freeze: []string{"head.0."}, Workers: cfg.Workers}
		case *optim.Config:
			*c = cfg.Optim
		}
	}
	return spec, nil
}

// countClasses returns the largest label of ds + 1 (it reads the dataset
// without decoding).
func countClasses(ctx context.Context, ds sources.Dataset) (int, error) {
	classes := 0
	err := sources.Each(ctx, ds, sources.StreamConfig{}, func(s pipeline.Sample) error {
		if s.Label < 0 {
			return fmt.Errorf("finetune: %s has no label", s.Origin)
		}
		classes = max(classes, int(s.Label)+1)
		return nil
	})
	return classes, err
}

// classifierWeights returns a copy of w whose head is the identity
// (head.0, Hidden = w.Features()) followed by a freshly initialised
// Linear(features, classes) (head.2).
func classifierWeights(w *encode.Weights, classes int, seed int64) (*encode.Weights, error) {
	c := w.Config()
	c.Hidden, c.Out = w.Features(), classes
	ft, err := encode.NewWeights(c, w.Input(), rand.New(rand.NewPCG(uint64(seed), 0xc1a55)))
	if err != nil {
		return nil, fmt.Errorf("finetune: %w", err)
	}
	for _, ts := range [][]*encode.Tensor{ft.Params, ft.Buffers} {
		for _, t := range ts {
			if strings.HasPrefix(t.Name, "head.") {
				continue
			}
			src := w.Tensor(t.Name)
			if src == nil || len(src.Data) != len(t.Data) {
				return nil, fmt.Errorf("finetune: the encoder has no tensor %s of %d values", t.Name, len(t.Data))
			}
			copy(t.Data, src.Data)
		}
	}
	d := w.Features()
	id := ft.Tensor("head.0.weight").Data
	clear(id)
	for i := range d {
		id[i*d+i] = 1
	}
	clear(ft.Tensor("head.0.bias").Data)
	return ft, nil
}
