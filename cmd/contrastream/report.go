package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/contrastream/contrastream/flows"
	"github.com/contrastream/contrastream/sinks"
	"github.com/contrastream/contrastream/sources"
	"github.com/contrastream/contrastream/stages/eval"
)

func runReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("report", stderr)
	out := fs.String("out", "", "the `folder` for report.html and its PNGs (default RUN_DIR/report)")
	ckpt := fs.String("checkpoint", "", "the checkpoint `folder` (default RUN_DIR/checkpoint)")
	train := fs.String("train", "", "the retrieval memory and kNN memory `SRC` (default: the flow's dataset)")
	test := fs.String("test", "", "the dataset `SRC` to map and query (default: the flow's test split, builtin:test for built-in data)")
	maxTest := fs.Int("max-test", 2000, "encode at most `N` test images (evenly spaced)")
	maxTrain := fs.Int("max-train", 10000, "encode at most `N` training images (evenly spaced)")
	tsne := fs.Int("tsne", 1000, "points of the t-SNE map, `N` test images evenly spaced (0: no t-SNE map; its time grows as N²)")
	k := fs.Int("k", 200, "neighbours of the kNN point")
	temp := fs.Float64("t", 0.1, "temperature of the kNN point's votes")
	quiet := fs.Bool("q", false, "no progress display")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: want one RUN_DIR (the --out folder of train)", errUsage)
	}
	if *maxTest < 1 || *maxTrain < 1 || *tsne < 0 {
		return fmt.Errorf("%w: --max-test and --max-train must be ≥ 1, --tsne ≥ 0", errUsage)
	}
	if *tsne == 0 {
		*tsne = -1 // ReportConfig: negative is none
	}
	cfg := flows.ReportConfig{Out: *out, Checkpoint: *ckpt, Train: sources.Config{Path: *train}, Test: sources.Config{Path: *test},
		MaxTest: *maxTest, MaxTrain: *maxTrain, TSNE: *tsne, KNN: eval.KNNConfig{K: *k, Temperature: temp}}
	var (
		prog  *sinks.Progress
		phase string
	)
	if !*quiet {
		cfg.Progress = func(p string, n, total int64) {
			if p != phase {
				if prog != nil {
					prog.Done()
				}
				phase, prog = p, (&sinks.Progress{Label: "report: encode " + p, Unit: "images", Total: total}).Start(stderr)
			}
			prog.Set(n)
		}
	}
	start := time.Now()
	r, err := flows.Report(ctx, fs.Arg(0), cfg)
	if prog != nil {
		prog.Done()
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%d figures, %d steps) in %s\n", sinks.Printable(r.Page), len(r.Figures), r.Steps, time.Since(start).Round(time.Millisecond))
	if !math.IsNaN(r.KNN) {
		fmt.Fprintf(stdout, "kNN top-1 of the checkpoint: %.2f%%\n", 100*r.KNN)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(stdout, "note: %s\n", sinks.Printable(n))
	}
	return nil
}
