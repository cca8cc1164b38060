package flows

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sources"
	"github.com/contrastream/contrastream/stages/augment"
	"github.com/contrastream/contrastream/stages/encode"
	"github.com/contrastream/contrastream/stages/eval"
	"github.com/contrastream/contrastream/stages/optim"
)

// LinearConfig says what Linear evaluates.
type LinearConfig struct {
	// Train and Test are the datasets the classifier is trained and
	// tested on. Default builtin:train and builtin:test.
	Train, Test sources.Config
	// Linear is the probe's recipe (default: the reference's, see
	// eval.LinearConfig).
	Linear eval.LinearConfig
	// Progress, when set, is called with a phase ("train", "test") and the
	// number of samples encoded, and with phase "fit" (and 0) once the
	// classifier's training starts.
	Progress func(phase string, done int64)
}

// Linear evaluates the frozen encoder w by a linear probe: a softmax
// regression on the standardised features of the training split (eval
// mode, no augmentation), tested on the test split's. acfg is the flow's
// augment config (for the size and normalisation).
func Linear(ctx context.Context, w *encode.Weights, acfg augment.Config, cfg LinearConfig) (eval.LinearResult, error) {
	if err := cfg.Linear.Validate(); err != nil {
		return eval.LinearResult{}, err
	}
	feats, err := splitFeatures(ctx, w, acfg, "linear", [2]sources.Config{cfg.Train, cfg.Test}, cfg.Progress)
	if err != nil {
		return eval.LinearResult{}, err
	}
	if cfg.Progress != nil {
		cfg.Progress("fit", 0)
	}
	return eval.Linear(feats[0], feats[1], cfg.Linear)
}

// FineTuneConfig says how FineTune trains. Its zero value (but Epochs)
// is the contrastive flows' recipe: their batch size, augmentation and
// optimizer (SGD, lr 0.06, momentum 0.9, weight decay 5e-4, cosine decay
// over the run).
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
	// Replicas is the number of copies of the encoder that each take a
	// shard of the batch (BatchNorm statistics are per shard). Default:
	// the largest divisor of BatchSize up to GOMAXPROCS.
	Replicas int
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
// The classifier is the encoder's own head, so that the encoder's
// Replica back-propagates it unchanged: a copy of w with Hidden = its
// feature size and Out = the number of classes, whose head.0 is fixed to
// the identity with no bias (and left out of the optimizer). The features
// are non-negative (the global average pool of a ReLU), so head.0's ReLU
// passes them unchanged, and head.2 is exactly a linear classifier on the
// features. Its weights start as PyTorch's nn.Linear does, from Seed.
//
// Cost: a training step is the contrastive flows' with one view instead of
// two; the training set streams, one epoch at a time, as in training.
func FineTune(ctx context.Context, w *encode.Weights, acfg augment.Config, cfg FineTuneConfig) (FineTuneResult, error) {
	if cfg.Epochs < 1 {
		return FineTuneResult{}, fmt.Errorf("finetune: epochs %d, want at least 1", cfg.Epochs)
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = 256
	}
	if cfg.BatchSize < 1 {
		return FineTuneResult{}, fmt.Errorf("finetune: batch size %d, want at least 1", cfg.BatchSize)
	}
	if err := cfg.Optim.Validate(); err != nil {
		return FineTuneResult{}, fmt.Errorf("finetune: %w", err)
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
	sc := sources.StreamConfig{Seed: cfg.Seed, Epochs: cfg.Epochs, Shuffle: true}
	perEpoch := sc.EpochLen(dss[0]) / int64(cfg.BatchSize)
	if perEpoch == 0 {
		return FineTuneResult{}, fmt.Errorf("finetune: %s has %d samples, fewer than the batch size %d", dss[0].Name(), sc.EpochLen(dss[0]), cfg.BatchSize)
	}
	tr, err := newTrainer(ft, cfg, classes, int(perEpoch)*cfg.Epochs)
	if err != nil {
		return FineTuneResult{}, err
	}
	defer tr.close()
	if err := tr.run(ctx, dss[0], sc, acfg); err != nil {
		return FineTuneResult{}, err
	}
	if err := encode.CopyTensors(ft.Buffers, tr.reps[0].Buffers()); err != nil {
		return FineTuneResult{}, err
	}
	var pf func(int64)
	if cfg.Progress != nil {
		pf = func(n int64) { cfg.Progress(FineTuneProgress{Phase: "test", Encoded: n}) }
	}
	test, err := Features(ctx, ft, dss[1], acfg, pf)
	if err != nil {
		return FineTuneResult{}, err
	}
	res := FineTuneResult{Losses: tr.losses, Classes: classes, Weights: ft, Total: test.N}
	pred := eval.Predict(test.Data, test.N, test.D, ft.Tensor("head.2.weight").Data, ft.Tensor("head.2.bias").Data)
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

// trainer runs the fine-tune's steps: R replicas of the classifier
// weights, each on a shard of the batch, their gradients summed in
// replica order (so the result does not depend on timing).
type trainer struct {
	w       *encode.Weights
	cfg     FineTuneConfig
	classes int
	reps    []*encode.Replica
	params  []*optim.Param
	index   []int // params[i] is the Weights' Params[index[i]]
	opt     optim.Optimizer
	sched   *optim.Schedule
	steps   int
	losses  []float64
	logits  [][]float32 // per replica: dL/dlogits
}

func newTrainer(w *encode.Weights, cfg FineTuneConfig, classes, steps int) (*trainer, error) {
	r := cfg.Replicas
	if r <= 0 {
		r = 1
		for k := min(runtime.GOMAXPROCS(0), cfg.BatchSize); k > 1; k-- {
			if cfg.BatchSize%k == 0 {
				r = k
				break
			}
		}
	}
	if cfg.BatchSize%r != 0 {
		return nil, fmt.Errorf("finetune: %d replicas do not split a batch of %d", r, cfg.BatchSize)
	}
	t := &trainer{w: w, cfg: cfg, classes: classes, steps: steps}
	for range r {
		rep, err := encode.NewReplica(w, cfg.BatchSize/r)
		if err != nil {
			t.close()
			return nil, err
		}
		t.reps = append(t.reps, rep)
		t.logits = append(t.logits, make([]float32, cfg.BatchSize/r*classes))
	}
	for i, p := range w.Params {
		if strings.HasPrefix(p.Name, "head.0.") {
			continue // the identity: fixed
		}
		t.params = append(t.params, &optim.Param{Name: p.Name, Shape: p.Shape, Data: p.Data, Grad: make([]float32, len(p.Data)), NoDecay: p.NoDecay})
		t.index = append(t.index, i)
	}
	var err error
	if t.opt, err = optim.New(cfg.Optim, t.params); err != nil {
		t.close()
		return nil, fmt.Errorf("finetune: %w", err)
	}
	if t.sched, err = cfg.Optim.NewSchedule(steps); err != nil {
		t.close()
		return nil, fmt.Errorf("finetune: %w", err)
	}
	return t, nil
}

func (t *trainer) close() {
	for _, r := range t.reps {
		r.Close()
	}
}

// run streams the training set (sc: shuffled, every epoch), augments one
// view of each sample and takes a step every full batch; the partial batch
// at the end of an epoch is dropped.
func (t *trainer) run(ctx context.Context, ds sources.Dataset, sc sources.StreamConfig, acfg augment.Config) error {
	aug, err := augment.New(acfg)
	if err != nil {
		return err
	}
	in := t.w.Input()
	epochLen := sc.EpochLen(ds)
	x := make([]float32, t.cfg.BatchSize*in.Len())
	labels := make([]int64, 0, t.cfg.BatchSize)
	var (
		v         pipeline.View
		seen      int64
		lastEpoch int
	)
	return sources.Each(ctx, ds, sc, func(s pipeline.Sample) error {
		epoch := int(seen / epochLen)
		seen++
		if epoch != lastEpoch {
			labels, lastEpoch = labels[:0], epoch // a new epoch: drop the partial batch
		}
		img, err := sources.Decode(s, acfg.MaxPixels)
		if err != nil {
			return nil // a bad sample: skipped
		}
		if err := aug.View(img, t.cfg.Seed, epoch, s.Index, 0, &v); err != nil {
			return nil
		}
		if v.C != in.C || v.H != in.H || v.W != in.W {
			return fmt.Errorf("finetune: %s: its view is %d×%d×%d; the encoder takes %s", s.Origin, v.C, v.H, v.W, in)
		}
		copy(x[len(labels)*in.Len():], v.Data)
		labels = append(labels, s.Label)
		if len(labels) < t.cfg.BatchSize {
			return nil
		}
		loss, acc, err := t.step(x, labels)
		if err != nil {
			return fmt.Errorf("finetune: step %d: %w", len(t.losses), err)
		}
		labels = labels[:0]
		if t.cfg.Progress != nil {
			t.cfg.Progress(FineTuneProgress{Phase: "train", Step: int64(len(t.losses)), Steps: int64(t.steps), Epoch: epoch, Loss: loss, Accuracy: acc})
		}
		return nil
	})
}

// step takes one optimizer step on the batch x with labels and returns the
// batch's mean cross-entropy and top-1.
func (t *trainer) step(x []float32, labels []int64) (loss, acc float64, err error) {
	n := len(labels)
	shard := n / len(t.reps)
	in := t.w.Input().Len()
	sums := make([]float64, len(t.reps))
	correct := make([]int, len(t.reps))
	err = pipeline.Parallel(len(t.reps), func(i int) error {
		r := t.reps[i]
		_, logits, err := r.Forward(x[i*shard*in:(i+1)*shard*in], encode.Train)
		if err != nil {
			return err
		}
		sums[i], correct[i] = eval.CrossEntropy(logits, labels[i*shard:(i+1)*shard], t.classes, 1/float64(n), t.logits[i])
		return r.Backward(t.logits[i])
	})
	if err != nil {
		return 0, 0, err
	}
	for k, p := range t.params {
		j := t.index[k]
		copy(p.Grad, t.reps[0].Params()[j].Grad)
		for _, r := range t.reps[1:] {
			for m, g := range r.Params()[j].Grad {
				p.Grad[m] += g
			}
		}
	}
	var total float64
	var right int
	for i := range sums {
		total += sums[i]
		right += correct[i]
	}
	loss = total / float64(n)
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return loss, 0, fmt.Errorf("the loss is %v", loss)
	}
	t.opt.Step(t.sched.At(t.opt.Steps()))
	t.losses = append(t.losses, loss)
	return loss, float64(right) / float64(n), nil
}
