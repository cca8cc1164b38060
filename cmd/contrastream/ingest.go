package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/contrastream/contrastream/flows"
	"github.com/contrastream/contrastream/sinks"
	"github.com/contrastream/contrastream/sources"
)

func runIngest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("ingest", stderr)
	out := fs.String("out", "", "the Parquet `file` to write (required)")
	format := fs.String("format", "", "the source's format: "+strings.Join(sources.FormatNames(), ", ")+" (default: detected)")
	labels := fs.String("labels", "", "the IDX labels `file` (for an IDX source)")
	perClass := fs.Int("per-class", 0, "keep only the first `N` samples of each label (0: all)")
	rowGroup := fs.Int("row-group", sinks.DefaultRowGroupSize, "rows per Parquet row group")
	maxBad := fs.Int("max-bad", 0, "skip up to `N` unreadable images (-1: any number)")
	classes := fs.String("classes", "", "comma-separated class `names` for labels 0, 1, … (default: the source's, e.g. an image folder's sub-folders)")
	quiet := fs.Bool("q", false, "no progress display")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *out == "" {
		fs.Usage()
		return fmt.Errorf("%w: want --out FILE and one source (IDX images file or image folder)", errUsage)
	}
	src := sources.Config{Path: fs.Arg(0), Format: *format, Labels: *labels}
	var prog *sinks.Progress
	cfg := flows.IngestConfig{Source: src, Out: *out, PerClass: *perClass, RowGroupSize: *rowGroup, MaxBadSamples: *maxBad}
	if *classes != "" {
		cfg.ClassNames = strings.Split(*classes, ",")
	}
	if !*quiet {
		prog = (&sinks.Progress{Label: "ingest", Unit: "images"}).Start(stderr)
		cfg.Progress = func(rows, total int64) { prog.SetTotal(total); prog.Set(rows) }
	}
	st, err := flows.Ingest(ctx, cfg)
	if prog != nil {
		prog.Done()
	}
	if err != nil {
		return err
	}
	info, _ := os.Stat(*out)
	size := int64(0)
	if info != nil {
		size = info.Size()
	}
	fmt.Fprintf(stdout, "wrote %s: %s rows, %s bytes, %d classes, %d bad samples skipped\n",
		sinks.Printable(*out), sinks.Count(st.Rows), sinks.Count(size), len(st.Classes), st.Skipped)
	return nil
}
