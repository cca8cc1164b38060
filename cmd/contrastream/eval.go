package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/contrastream/contrastream/flows"
	"github.com/contrastream/contrastream/sinks"
	"github.com/contrastream/contrastream/sources"
	"github.com/contrastream/contrastream/stages/eval"
	"github.com/contrastream/contrastream/stages/optim"
)

const evalUsage = `Usage: contrastream eval knn    --checkpoint DIR | --random-init FLOW [flags]
       contrastream eval linear --checkpoint DIR | --random-init FLOW [--finetune --epochs E] [flags]

Judge an encoder by what its features do on a labeled test split:
  knn      weighted kNN (k 200, T 0.1): the train split's features as memory
  linear   linear probe: frozen encoder, standardised features, softmax
           regression by full-batch Adam (lr 0.01, wd 1e-4) until the loss
           stops falling (--iterations 300: the reference's fixed count);
           with --finetune, the encoder is trained with the classifier by
           cross-entropy (with --random-init: the supervised baseline), on
           the training step of the flows (the finetune flow: BatchNorm over
           the batch, at most 100 bad images, a NaN stops it at its step)

Examples:
  contrastream eval knn    --checkpoint runs/moco-X/checkpoint
  contrastream eval linear --checkpoint runs/moco-X/checkpoint --test builtin:test
  contrastream eval linear --random-init supcon --finetune --epochs 10

Run 'contrastream eval knn -h' or 'contrastream eval linear -h' for the flags.`

func runEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: want 'eval knn' or 'eval linear'\n\n%s", errUsage, evalUsage)
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprintln(stderr, evalUsage)
		return nil
	case "knn":
		return runKNN(ctx, args[1:], stdout, stderr)
	case "linear":
		return runLinear(ctx, args[1:], stdout, stderr)
	}
	return fmt.Errorf("%w: want 'eval knn' or 'eval linear', got %q", errUsage, args[0])
}

// encoderFlags are the flags every eval sub-command has: which encoder,
// on which data.
type encoderFlags struct {
	ckpt, random, train, test *string
	trainLabels, testLabels   *string
	quiet                     *bool
}

// data returns the train and test datasets the flags name.
func (f *encoderFlags) data() (train, test sources.Config) {
	return sources.Config{Path: *f.train, Labels: *f.trainLabels}, sources.Config{Path: *f.test, Labels: *f.testLabels}
}

func newEvalFlags(sub string, stderr io.Writer) (*flag.FlagSet, *encoderFlags) {
	fs := flag.NewFlagSet("eval "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "%s\n\nFlags of eval %s:\n", evalUsage, sub)
		fs.PrintDefaults()
	}
	return fs, &encoderFlags{
		ckpt:        fs.String("checkpoint", "", "the checkpoint `folder` to evaluate"),
		random:      fs.String("random-init", "", "evaluate the untrained encoder of the flow `NAME|FILE` instead (the baseline)"),
		train:       fs.String("train", flows.BuiltinTrain, "the training dataset `SRC` (labeled)"),
		test:        fs.String("test", flows.BuiltinTest, "the test dataset `SRC` (labeled)"),
		trainLabels: fs.String("train-labels", "", "the IDX labels `FILE` of an IDX --train"),
		testLabels:  fs.String("test-labels", "", "the IDX labels `FILE` of an IDX --test"),
		quiet:       fs.Bool("q", false, "no progress display"),
	}
}

// load returns the encoder the flags name and how to call it.
func (f *encoderFlags) load(fs *flag.FlagSet) (*flows.Encoder, string, error) {
	if fs.NArg() > 0 {
		return nil, "", fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if (*f.ckpt == "") == (*f.random == "") {
		return nil, "", fmt.Errorf("%w: want --checkpoint DIR or --random-init FLOW", errUsage)
	}
	if *f.ckpt != "" {
		enc, err := flows.LoadEncoder(*f.ckpt)
		return enc, *f.ckpt, err
	}
	spec, err := flows.Load(*f.random, nil)
	if err != nil {
		return nil, "", err
	}
	enc, err := flows.NewEncoder(spec)
	return enc, "random-init " + spec.Name, err
}

// phases shows one progress line per phase of encoding.
type phases struct {
	w     io.Writer
	what  string
	prog  *sinks.Progress
	phase string
}

func (p *phases) set(phase string, n int64) {
	if phase != p.phase {
		p.done()
		p.phase, p.prog = phase, (&sinks.Progress{Label: p.what + " encode " + phase, Unit: "images"}).Start(p.w)
	}
	p.prog.Set(n)
}

func (p *phases) done() {
	if p.prog != nil {
		p.prog.Done()
		p.prog = nil
	}
}

func runKNN(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, ef := newEvalFlags("knn", stderr)
	k := fs.Int("k", 200, "number of neighbours")
	temp := fs.Float64("t", 0.1, "temperature of the votes")
	if err := parse(fs, args); err != nil {
		return err
	}
	enc, what, err := ef.load(fs)
	if err != nil {
		return err
	}
	train, test := ef.data()
	cfg := flows.KNNConfig{Train: train, Test: test, KNN: eval.KNNConfig{K: *k, Temperature: temp}}
	ph := &phases{w: stderr, what: "knn"}
	if !*ef.quiet {
		cfg.Progress = ph.set
	}
	start := time.Now()
	r, err := flows.KNN(ctx, enc.Weights, enc.Augment, cfg)
	ph.done()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "knn accuracy %.4f (%d/%d) of %s: k=%d, T=%g, memory %s, queries %s, %s\n",
		r.Accuracy, r.Correct, r.Total, sinks.Printable(what), *k, *temp, sinks.Printable(*ef.train), sinks.Printable(*ef.test), time.Since(start).Round(time.Millisecond))
	return nil
}

func runLinear(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, ef := newEvalFlags("linear", stderr)
	iters := fs.Int("iterations", 0, "probe: full-batch Adam steps (0: until the loss stops falling; the PyTorch reference runs 300)")
	lr := fs.Float64("lr", 0, "learning rate (default: probe 0.01; --finetune the optimizer's, sgd 0.06)")
	wd := fs.Float64("wd", eval.DefaultLinearWeightDecay, "probe: L2 weight decay")
	seed := fs.Int64("seed", 0, "seed of the classifier's initial weights (--finetune: also of the order and augmentation)")
	finetune := fs.Bool("finetune", false, "train the encoder with the classifier by cross-entropy, with the flow's augmentation")
	epochs := fs.Int("epochs", 0, "--finetune: passes over the training set (required)")
	batch := fs.Int("batch", 0, "--finetune: batch size (default: the flow's, 256)")
	opt := fs.String("optimizer", "", "--finetune: sgd (default: lr 0.06, momentum 0.9, wd 5e-4, cosine) or adamw")
	if err := parse(fs, args); err != nil {
		return err
	}
	var lrSet *float64 // nil unless --lr was given: then 0 is refused, not the default
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "lr" {
			lrSet = lr
		}
	})
	enc, what, err := ef.load(fs)
	if err != nil {
		return err
	}
	train, test := ef.data()
	start := time.Now()
	if *finetune {
		if *epochs < 1 {
			return fmt.Errorf("%w: --finetune needs --epochs E (at least 1)", errUsage)
		}
		cfg := flows.FineTuneConfig{Train: train, Test: test, Epochs: *epochs, BatchSize: *batch, Seed: *seed,
			Optim: optim.Config{Optimizer: *opt, LR: lrSet}}
		if cfg.BatchSize == 0 {
			cfg.BatchSize = enc.BatchSize()
		}
		var prog *sinks.Progress
		var last flows.FineTuneProgress
		ph := &phases{w: stderr, what: "finetune"}
		if !*ef.quiet {
			cfg.Progress = func(p flows.FineTuneProgress) {
				if p.Phase == "test" {
					if prog != nil {
						prog.Done()
						prog = nil
					}
					ph.set("test", p.Encoded)
					return
				}
				if prog == nil {
					prog = (&sinks.Progress{Label: "finetune " + what, Unit: "steps", Total: p.Steps,
						Extra: func() string {
							return fmt.Sprintf("epoch %d/%d  loss %.4f  batch top-1 %.3f", last.Epoch+1, *epochs, last.Loss, last.Accuracy)
						}}).Start(stderr)
				}
				last = p
				prog.Set(p.Step)
			}
		}
		r, err := flows.FineTune(ctx, enc.Weights, enc.Augment, cfg)
		if prog != nil {
			prog.Done()
		}
		ph.done()
		if err != nil {
			return err
		}
		lastLoss := 0.0
		if len(r.Losses) > 0 {
			lastLoss = r.Losses[len(r.Losses)-1]
		}
		fmt.Fprintf(stdout, "finetune accuracy %.4f (%d/%d) of %s: %d epochs (%d steps of %d, last loss %.4f), train %s, test %s, %s\n",
			r.Accuracy, r.Correct, r.Total, sinks.Printable(what), *epochs, len(r.Losses), cfg.BatchSize, lastLoss, sinks.Printable(*ef.train), sinks.Printable(*ef.test), time.Since(start).Round(time.Millisecond))
		return nil
	}
	if *epochs != 0 || *batch != 0 || *opt != "" {
		return fmt.Errorf("%w: --epochs, --batch and --optimizer apply to --finetune only", errUsage)
	}
	cfg := flows.LinearConfig{Train: train, Test: test, Linear: eval.LinearConfig{Iterations: *iters, LR: lrSet, WeightDecay: wd, Seed: uint64(*seed)}}
	ph := &phases{w: stderr, what: "linear"}
	var fit time.Time
	cfg.Progress = func(phase string, n int64) {
		switch {
		case phase == "fit":
			ph.done()
			fit = time.Now()
		case !*ef.quiet:
			ph.set(phase, n)
		}
	}
	r, err := flows.Linear(ctx, enc.Weights, enc.Augment, cfg)
	ph.done()
	if err != nil {
		return err
	}
	its := fmt.Sprintf("%d iterations", r.Iterations)
	if r.Converged {
		its += " (converged)"
	}
	fmt.Fprintf(stdout, "linear accuracy %.4f (%d/%d) of %s: %s, train top-1 %.4f, loss %.4f, train %s, test %s, %s (encoding %s, probe %s)\n",
		r.Accuracy, r.Correct, r.Total, sinks.Printable(what), its, r.TrainAccuracy, r.Loss, sinks.Printable(*ef.train), sinks.Printable(*ef.test), time.Since(start).Round(time.Millisecond),
		fit.Sub(start).Round(time.Millisecond), time.Since(fit).Round(time.Millisecond))
	return nil
}
