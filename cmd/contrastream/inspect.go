package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/contrastream/contrastream/flows"
	"github.com/contrastream/contrastream/sinks"
	"github.com/contrastream/contrastream/sources"
)

func runInspect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("inspect", stderr)
	format := fs.String("format", "", "the dataset's format: "+strings.Join(sources.FormatNames(), ", ")+" (default: detected)")
	labels := fs.String("labels", "", "the IDX labels `file` (for an IDX dataset)")
	imageCol := fs.String("image-column", "", "the image `column` of a Parquet or Arrow dataset (default image)")
	labelCol := fs.String("label-column", "", "the label `column` of a Parquet or Arrow dataset (default label)")
	maxPixels := fs.Int("max-pixels", 0, "the largest image in `pixels` (default 64 Mi)")
	quiet := fs.Bool("q", false, "no progress display")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("%w: want one dataset (a file, glob, folder or builtin:train)", errUsage)
	}
	ds, err := flows.OpenDataset(sources.Config{Path: fs.Arg(0), Format: *format, Labels: *labels,
		ImageColumn: *imageCol, LabelColumn: *labelCol, MaxPixels: *maxPixels})
	if err != nil {
		return err
	}
	defer ds.Close()
	var progress func(int64)
	if !*quiet {
		prog := (&sinks.Progress{Label: "inspect", Unit: "samples", Total: ds.Len()}).Start(stderr)
		defer prog.Done()
		progress = prog.Set
	}
	s, err := sources.Inspect(ctx, ds, *maxPixels, progress)
	if err != nil {
		return err
	}
	return printableSummary(s).Write(stdout)
}

// printableSummary returns s with the strings its dataset gave (its name,
// columns, class names and the bad samples' origins) escaped for a
// terminal by sinks.Printable.
func printableSummary(s sources.Summary) sources.Summary {
	each := func(ss []string) []string {
		out := make([]string, len(ss))
		for i, x := range ss {
			out[i] = sinks.Printable(x)
		}
		return out
	}
	s.Name = sinks.Printable(s.Name)
	s.Columns, s.Classes, s.BadExamples = each(s.Columns), each(s.Classes), each(s.BadExamples)
	return s
}
