package flows

import (
	"context"
	"errors"
	"fmt"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sinks"
	"github.com/contrastream/contrastream/sources"
)

// IngestConfig says what Ingest converts. Its zero value, with Source and
// Out set, converts every sample with the defaults.
type IngestConfig struct {
	// Source is the dataset to convert: IDX files, an image folder, or any
	// other source.
	Source sources.Config
	// Out is the Parquet file to write (atomically: a reader never sees
	// half a file).
	Out string
	// PerClass, when > 0, keeps only the first PerClass samples of each
	// label, in Index order (a balanced slice, as the built-in dataset is).
	PerClass int
	// RowGroupSize is the number of rows per row group. Default
	// sinks.DefaultRowGroupSize.
	RowGroupSize int
	// MaxBadSamples is how many unreadable images are skipped (and
	// counted) before the conversion fails; -1 means no limit. Default 0.
	MaxBadSamples int
	// Workers is the number of goroutines that check and encode images.
	// Default GOMAXPROCS.
	Workers int
	// ClassNames, when set, names the labels in the file's metadata
	// (label l is ClassNames[l]); by default the source's names are kept
	// (an image folder's sub-folders), and IDX files have none.
	ClassNames []string
	// Progress, when set, is called with the number of rows written so far
	// and the number expected.
	Progress func(rows, total int64)
}

// IngestStats is what Ingest did.
type IngestStats struct {
	Rows    int64 // rows written
	Skipped int   // bad samples skipped
	Classes []string
	Metrics []pipeline.Snapshot
}

// Ingest converts a dataset to Parquet in the Hugging Face image layout:
// image: struct<bytes, path>, label: int64. Raw pixels (IDX) are encoded as
// PNG; PNG and JPEG files are copied as they are, after a check that they
// decode. It runs as a flow: source → encode (a worker pool, in order) →
// Parquet writer. On error or cancellation nothing is left at Out.
func Ingest(ctx context.Context, cfg IngestConfig) (IngestStats, error) {
	if cfg.Out == "" {
		return IngestStats{}, errors.New("ingest: no output file")
	}
	ds, err := OpenDataset(cfg.Source)
	if err != nil {
		return IngestStats{}, err
	}
	defer ds.Close()
	if cfg.PerClass > 0 {
		idx, err := sources.Balanced(ctx, ds, cfg.PerClass)
		if err != nil {
			return IngestStats{}, err
		}
		if ds, err = sources.Subset(ds, idx); err != nil {
			return IngestStats{}, err
		}
	}
	classes := sources.ClassNames(ds)
	if len(cfg.ClassNames) > 0 {
		classes = cfg.ClassNames
	}
	w, err := sinks.CreateDataset(cfg.Out, sinks.DatasetWriterOptions{
		RowGroupSize: cfg.RowGroupSize, ClassNames: classes, Unlabeled: !ds.Labeled()})
	if err != nil {
		return IngestStats{}, err
	}
	type row struct {
		png   []byte
		path  string
		label int64
	}
	maxPixels := cfg.Source.MaxPixels
	encode := func(_ context.Context, s pipeline.Sample) (row, error) {
		img, err := sources.Decode(s, maxPixels)
		if err != nil {
			return row{}, err
		}
		if len(s.Encoded) > 0 {
			return row{s.Encoded, s.Origin, s.Label}, nil
		}
		b, err := sinks.EncodePNG(img)
		if err != nil {
			return row{}, pipeline.Skip(s.Origin, err)
		}
		return row{b, "", s.Label}, nil
	}
	write := func(ctx context.Context, in *pipeline.Inbox, _ *pipeline.Outbox) error {
		return pipeline.Each(ctx, in, "write", func(r row) error {
			if err := w.Write(r.png, r.path, r.label); err != nil {
				return err
			}
			if cfg.Progress != nil {
				cfg.Progress(w.Rows(), ds.Len())
			}
			return nil
		})
	}
	f := pipeline.New(pipeline.Options{MaxBadSamples: cfg.MaxBadSamples}).
		Add("load", sources.NewStage(ds, sources.StreamConfig{})).
		Add("encode", pipeline.Map(encode, pipeline.PoolOptions{Workers: cfg.Workers})).
		Add("write", pipeline.StageFunc(write))
	if err := f.Run(ctx); err != nil {
		w.Abort()
		return IngestStats{}, fmt.Errorf("ingest %s: %w", cfg.Out, err)
	}
	if err := w.Close(); err != nil {
		return IngestStats{}, err
	}
	return IngestStats{Rows: w.Rows(), Skipped: f.Skips().Count(), Classes: classes, Metrics: f.Metrics()}, nil
}
