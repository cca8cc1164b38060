package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/contrastream/contrastream/flows"
	"github.com/contrastream/contrastream/sinks"
	"github.com/contrastream/contrastream/sources"
	"github.com/contrastream/contrastream/stages/eval"
)

func runEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "knn" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintln(stderr, "Usage: contrastream eval knn [flags]\n\nJudge a frozen encoder; run 'contrastream eval knn -h' for the flags.")
			return nil
		}
		got := "nothing"
		if len(args) > 0 {
			got = fmt.Sprintf("%q", args[0])
		}
		return fmt.Errorf("%w: want 'eval knn', got %s (the linear probe comes with the evaluation stages)", errUsage, got)
	}
	fs := newFlags("eval", stderr)
	ckpt := fs.String("checkpoint", "", "the checkpoint `folder` to evaluate")
	random := fs.String("random-init", "", "evaluate the untrained encoder of the flow `NAME|FILE` instead (the baseline)")
	train := fs.String("train", flows.BuiltinTrain, "the memory dataset `SRC` (labeled)")
	test := fs.String("test", flows.BuiltinTest, "the query dataset `SRC` (labeled)")
	k := fs.Int("k", 200, "number of neighbours")
	temp := fs.Float64("t", 0.1, "temperature of the votes")
	quiet := fs.Bool("q", false, "no progress display")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if (*ckpt == "") == (*random == "") {
		return fmt.Errorf("%w: want --checkpoint DIR or --random-init FLOW", errUsage)
	}
	var (
		enc  *flows.Encoder
		err  error
		what string
	)
	if *ckpt != "" {
		enc, err = flows.LoadEncoder(*ckpt)
		what = *ckpt
	} else {
		spec, lerr := flows.Load(*random, nil)
		if lerr != nil {
			return lerr
		}
		enc, err = flows.NewEncoder(spec)
		what = "random-init " + spec.Name
	}
	if err != nil {
		return err
	}
	cfg := flows.KNNConfig{Train: sources.Config{Path: *train}, Test: sources.Config{Path: *test}, KNN: eval.KNNConfig{K: *k, Temperature: *temp}}
	var (
		prog  *sinks.Progress
		phase string
	)
	if !*quiet {
		cfg.Progress = func(p string, n int64) {
			if p != phase {
				if prog != nil {
					prog.Done()
				}
				phase, prog = p, (&sinks.Progress{Label: "knn encode " + p, Unit: "images"}).Start(stderr)
			}
			prog.Set(n)
		}
	}
	start := time.Now()
	r, err := flows.KNN(ctx, enc.Weights, enc.Augment, cfg)
	if prog != nil {
		prog.Done()
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "knn accuracy %.4f (%d/%d) of %s: k=%d, T=%g, memory %s, queries %s, %s\n",
		r.Accuracy, r.Correct, r.Total, what, *k, *temp, *train, *test, time.Since(start).Round(time.Millisecond))
	return nil
}
