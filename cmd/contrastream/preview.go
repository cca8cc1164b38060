package main

import (
	"context"
	"fmt"
	"image"
	"io"

	"github.com/contrastream/contrastream/flows"
	"github.com/contrastream/contrastream/sinks"
)

func runPreview(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("preview", stderr)
	flow := fs.String("flow", defaultFlow, "the flow whose source and augment stage to preview: a prebuilt flow's `name` or a YAML file")
	data := fs.String("data", "", "the dataset `SRC`; overrides the flow's source.path")
	out := fs.String("out", "preview.png", "the PNG `file` to write")
	n := fs.Int("n", 8, "number of samples (rows)")
	cell := fs.Int("cell", 96, "side of each picture in the grid, in `pixels`")
	var sets multiFlag
	fs.Var(&sets, "set", "override a field of the flow, `path=value` (e.g. stages.augment.crop.scale=[0.08,1]); repeatable")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *n < 1 || *cell < 8 {
		return fmt.Errorf("%w: --n must be ≥ 1 and --cell ≥ 8", errUsage)
	}
	if *data != "" {
		sets = append(multiFlag{"source.path=" + *data}, sets...)
	}
	spec, err := flows.Load(*flow, sets)
	if err != nil {
		return err
	}
	rows, err := flows.Preview(ctx, spec, *n)
	if err != nil {
		return err
	}
	grid := make([][]image.Image, len(rows))
	for i, r := range rows {
		grid[i] = r.Images[:]
	}
	if err := sinks.WritePNG(*out, sinks.TitledGrid([]string{"original", "view 1", "view 2"}, grid, *cell, 4)); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: %d samples, each as original | view 1 | view 2\n", *out, len(rows))
	return nil
}
