package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/contrastream/contrastream/flows"
	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sinks"
	"github.com/contrastream/contrastream/sources"
)

func runEmbed(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("embed", stderr)
	ckpt := fs.String("checkpoint", "", "the checkpoint `folder` of the encoder")
	random := fs.String("random-init", "", "use the untrained encoder of the flow `NAME|FILE` instead (the baseline)")
	data := fs.String("data", "", "the dataset `SRC` to embed (default: the dataset the flow trained on)")
	out := fs.String("out", "", "the Parquet `file` to write (required)")
	projection := fs.Bool("projection", false, "store the projection head's output instead of the backbone features")
	rowGroup := fs.Int("row-group", 0, "rows per Parquet row group (default 4096)")
	quiet := fs.Bool("q", false, "no progress display")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if (*ckpt == "") == (*random == "") {
		return fmt.Errorf("%w: want --checkpoint DIR or --random-init FLOW", errUsage)
	}
	if *out == "" {
		return fmt.Errorf("%w: want --out FILE.parquet", errUsage)
	}
	if *rowGroup < 0 {
		return fmt.Errorf("%w: --row-group %d is negative", errUsage, *rowGroup)
	}
	enc, err := loadEncoder(*ckpt, *random)
	if err != nil {
		return err
	}
	cfg := flows.EmbedConfig{Data: sources.Config{Path: *data}, Projection: *projection, RowGroupSize: *rowGroup}
	var prog *sinks.Progress
	if !*quiet {
		cfg.Progress = func(done, total int64) {
			if prog == nil {
				prog = (&sinks.Progress{Label: "embed", Unit: "images", Total: total}).Start(stderr)
			}
			prog.Set(done)
		}
	}
	start := time.Now()
	r, err := flows.Embed(ctx, enc, *out, cfg)
	if prog != nil {
		prog.Done()
	}
	if err != nil {
		return err
	}
	el := time.Since(start)
	fmt.Fprintf(stdout, "wrote %s: %s rows of %d-dimensional raw %s of %s, by %s, in %s (%.0f images/s)\n",
		sinks.Printable(*out), sinks.Count(r.Rows), r.Info.Dim, r.Info.Kind, sinks.Printable(r.Info.Data), sinks.Printable(encoderName(enc)), el.Round(time.Millisecond), float64(r.Rows)/el.Seconds())
	if r.Skipped > 0 {
		fmt.Fprintf(stdout, "%d samples skipped: their images did not decode\n", r.Skipped)
	}
	return nil
}

// loadEncoder loads the encoder of a checkpoint folder, or makes a flow's
// untrained one.
func loadEncoder(ckpt, random string) (*flows.Encoder, error) {
	if ckpt != "" {
		return flows.LoadEncoder(ckpt)
	}
	spec, err := flows.Load(random, nil)
	if err != nil {
		return nil, err
	}
	return flows.NewEncoder(spec)
}

func encoderName(e *flows.Encoder) string {
	if e.Checkpoint == "" {
		return "the random-init encoder of " + e.Spec.Name
	}
	return fmt.Sprintf("%s (step %d)", e.Checkpoint, e.Step)
}

func runNeighbors(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("neighbors", stderr)
	file := fs.String("embeddings", "", "the embedding `file` to search (written by embed)")
	index := fs.Int64("index", -1, "find the neighbours of the row whose sample index is `I`")
	query := fs.String("query", "", "find the neighbours of every row of this embedding `file`")
	k := fs.Int("k", 10, "number of neighbours")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if *file == "" {
		return fmt.Errorf("%w: want --embeddings FILE", errUsage)
	}
	if (*index < 0) == (*query == "") {
		return fmt.Errorf("%w: want --index I or --query FILE", errUsage)
	}
	if *k < 1 {
		return fmt.Errorf("%w: --k %d; want ≥ 1", errUsage, *k)
	}
	mem, err := sinks.ReadEmbeddings(*file)
	if err != nil {
		return err
	}
	type q struct {
		vec   []float32
		index int64
		label int64
		path  string
		skip  int // the query's own row in mem, or -1
	}
	var queries []q
	names := mem.Info.ClassNames
	if *index >= 0 {
		row := -1
		for i, x := range mem.Index {
			if x == *index {
				row = i
				break
			}
		}
		if row < 0 {
			return fmt.Errorf("embeddings %s: no row has index %d (%s rows)", *file, *index, sinks.Count(int64(mem.N)))
		}
		queries = append(queries, q{mem.Vector(row), mem.Index[row], mem.Label[row], mem.Path[row], row})
	} else {
		qe, err := sinks.ReadEmbeddings(*query)
		if err != nil {
			return err
		}
		if mem.Info.Kind != "" && qe.Info.Kind != "" && mem.Info.Kind != qe.Info.Kind {
			return fmt.Errorf("embeddings %s: holds %s vectors, and %s holds %s: they are not comparable (embed both with, or both without, --projection)",
				*query, qe.Info.Kind, *file, mem.Info.Kind)
		}
		if qe.D != mem.D {
			return fmt.Errorf("embeddings %s: column %q holds %d values a row, and %s holds %d: the files come from different encoders or heads",
				*query, sinks.EmbVectorColumn, qe.D, *file, mem.D)
		}
		if mem.Info.Checkpoint != qe.Info.Checkpoint || mem.Info.Step != qe.Info.Step {
			fmt.Fprintf(stderr, "warning: %s comes from %s step %d, %s from %s step %d: vectors of different encoders are rarely comparable\n",
				sinks.Printable(*query), sinks.Printable(qe.Info.Checkpoint), qe.Info.Step, sinks.Printable(*file), sinks.Printable(mem.Info.Checkpoint), mem.Info.Step)
		}
		if names == nil {
			names = qe.Info.ClassNames
		}
		for i := range qe.N {
			queries = append(queries, q{qe.Vector(i), qe.Index[i], qe.Label[i], qe.Path[i], -1})
		}
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	for n, qq := range queries {
		if err := ctx.Err(); err != nil {
			return err
		}
		nb, err := mem.Nearest(qq.vec, *k, qq.skip)
		if err != nil {
			return err
		}
		if n > 0 {
			fmt.Fprintln(tw)
		}
		fmt.Fprintf(tw, "query index %d, label %s%s\n", qq.index, labelName(qq.label, names), pathNote(qq.path))
		fmt.Fprintln(tw, "rank\tindex\tlabel\tsimilarity\tpath")
		for r, x := range nb {
			p := sinks.Printable(mem.Path[x.Row])
			if p == "" {
				p = "-"
			}
			fmt.Fprintf(tw, "%d\t%d\t%s\t%.4f\t%s\n", r+1, mem.Index[x.Row], labelName(mem.Label[x.Row], names), x.Similarity, p)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// labelName is label l with its class name, if names has one, spaces made
// underscores (a column of the table), escaped for a terminal.
func labelName(l int64, names []string) string {
	switch {
	case l == pipeline.NoLabel:
		return "-"
	case l >= 0 && l < int64(len(names)):
		return fmt.Sprintf("%d %s", l, sinks.Printable(strings.ReplaceAll(names[l], " ", "_")))
	}
	return fmt.Sprint(l)
}

// pathNote is ", path p", p escaped for a terminal, or "" for no path.
func pathNote(p string) string {
	if p == "" {
		return ""
	}
	return ", path " + sinks.Printable(p)
}
