package flows

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sinks"
	"github.com/contrastream/contrastream/sources"
	"github.com/contrastream/contrastream/stages/augment"
	"github.com/contrastream/contrastream/stages/encode"
)

// EncodedBatch is one batch of samples through a frozen encoder, in Index
// order.
type EncodedBatch struct {
	// Index, Label and Path are the samples' (see pipeline.Sample).
	Index, Label []int64
	Path         []string
	// D is the vector length and Data the len(Index)×D vectors, row-major.
	// Data is reused after the callback returns: copy what you keep.
	D    int
	Data []float32
}

// EncodeOptions says what EncodeEach computes.
type EncodeOptions struct {
	// Projection takes the projection head's output instead of the
	// backbone features (the default, what the kNN monitor uses).
	Projection bool
	// Progress, when set, is called after each batch with the number of
	// samples encoded so far.
	Progress func(done int64)
}

// EncodeEach runs every sample of ds (in Index order) through the frozen
// encoder w in eval mode after EvalAugment(acfg), and calls fn with each
// batch of up to 256 vectors: raw, not L2-normalised. Samples that do not
// decode are skipped and counted. It holds one batch in memory.
func EncodeEach(ctx context.Context, w *encode.Weights, ds sources.Dataset, acfg augment.Config, opts EncodeOptions, fn func(EncodedBatch) error) (skipped int64, err error) {
	aug, err := augment.New(EvalAugment(acfg))
	if err != nil {
		return 0, err
	}
	in := w.Input()
	r, err := encode.NewReplica(w, evalBatch)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	d := w.Features()
	if opts.Projection {
		d = w.Out()
	}
	x := make([]float32, evalBatch*in.Len())
	b := EncodedBatch{D: d}
	var done int64
	flush := func() error {
		n := len(b.Index)
		if n == 0 {
			return nil
		}
		clear(x[n*in.Len():]) // padding rows: eval-mode BatchNorm treats rows alone
		var (
			v   []float32
			err error
		)
		if opts.Projection {
			_, v, err = r.Forward(x, encode.Eval)
		} else {
			v, err = r.Features(x, encode.Eval)
		}
		if err != nil {
			return err
		}
		b.Data = v[:n*d]
		if err := fn(b); err != nil {
			return err
		}
		done += int64(n)
		b.Index, b.Label, b.Path = b.Index[:0], b.Label[:0], b.Path[:0]
		if opts.Progress != nil {
			opts.Progress(done)
		}
		return nil
	}
	var v pipeline.View
	err = sources.Each(ctx, ds, sources.StreamConfig{}, func(s pipeline.Sample) error {
		img, err := sources.Decode(s, acfg.MaxPixels)
		if pipeline.IsSkip(err) {
			skipped++
			return nil
		} else if err != nil {
			return err
		}
		if err := aug.View(img, 0, 0, s.Index, 0, &v); err != nil {
			skipped++
			return nil
		}
		if v.C != in.C || v.H != in.H || v.W != in.W {
			return fmt.Errorf("%s: its view is %d×%d×%d; the encoder takes %s (images of another size or channel count)", s.Origin, v.C, v.H, v.W, in)
		}
		copy(x[len(b.Index)*in.Len():], v.Data)
		b.Index = append(b.Index, s.Index)
		b.Label = append(b.Label, s.Label)
		b.Path = append(b.Path, s.Path)
		if len(b.Index) == evalBatch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	return skipped, err
}

// EmbedConfig says what Embed writes.
type EmbedConfig struct {
	// Data is the dataset to embed. Default: the encoder's flow's dataset.
	Data sources.Config
	// Projection writes the projection head's output instead of the
	// backbone features.
	Projection bool
	// RowGroupSize is the rows per row group of the file; see
	// sinks.EmbeddingWriterOptions.
	RowGroupSize int
	// Progress, when set, is called with the number of samples encoded
	// and the number expected.
	Progress func(done, total int64)
}

// EmbedResult is what Embed did.
type EmbedResult struct {
	// Rows is the number of rows written, Skipped the number of samples
	// that did not decode.
	Rows, Skipped int64
	// Info is the file's description.
	Info sinks.EmbeddingInfo
}

// Embed writes the embedding of every sample of cfg.Data by enc to the
// Parquet file out (see sinks.EmbeddingWriter), atomically: on any error
// out is left as it was. The vectors are raw (not L2-normalised), as the
// file's metadata says.
func Embed(ctx context.Context, enc *Encoder, out string, cfg EmbedConfig) (EmbedResult, error) {
	src := cfg.Data
	if src.Path == "" && len(src.Paths) == 0 {
		src = TrainData(enc.Spec)
	}
	ds, err := OpenDataset(src)
	if err != nil {
		return EmbedResult{}, err
	}
	defer ds.Close()
	info := sinks.EmbeddingInfo{
		Dim:        enc.Weights.Features(),
		Kind:       sinks.KindFeatures,
		Checkpoint: enc.Checkpoint,
		Step:       enc.Step,
		Flow:       enc.Spec.Name,
		Data:       dataName(src),
		ClassNames: sources.ClassNames(ds),
	}
	if cfg.Projection {
		info.Dim, info.Kind = enc.Weights.Out(), sinks.KindProjection
	}
	w, err := sinks.CreateEmbeddings(out, sinks.EmbeddingWriterOptions{Info: info, RowGroupSize: cfg.RowGroupSize})
	if err != nil {
		return EmbedResult{}, err
	}
	opts := EncodeOptions{Projection: cfg.Projection}
	if cfg.Progress != nil {
		total := ds.Len()
		opts.Progress = func(n int64) { cfg.Progress(n, total) }
	}
	skipped, err := EncodeEach(ctx, enc.Weights, ds, enc.Augment, opts, func(b EncodedBatch) error {
		for i := range b.Index {
			if err := w.Write(b.Index[i], b.Label[i], b.Path[i], b.Data[i*b.D:(i+1)*b.D]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		w.Abort()
		return EmbedResult{}, err
	}
	if w.Rows() == 0 {
		w.Abort()
		return EmbedResult{}, fmt.Errorf("embed: no sample of %s could be decoded (%d skipped)", ds.Name(), skipped)
	}
	if err := w.Close(); err != nil {
		return EmbedResult{}, err
	}
	return EmbedResult{Rows: w.Rows(), Skipped: skipped, Info: w.Info()}, nil
}

// dataName is how a dataset config is named in files and reports: its
// paths, comma-separated.
func dataName(c sources.Config) string {
	var p []string
	if c.Path != "" {
		p = append(p, c.Path)
	}
	return strings.Join(append(p, c.Paths...), ",")
}

// TrainData is spec's dataset (its source's config), or builtin:train
// when it has none.
func TrainData(spec *pipeline.Spec) sources.Config {
	if spec != nil {
		if src, ok := spec.Source.Config.(*DatasetConfig); ok && (src.Path != "" || len(src.Paths) > 0) {
			return src.Config
		}
	}
	return sources.Config{Path: BuiltinTrain}
}

// TestData guesses the test split of spec's dataset: builtin:test for
// the built-in data, and for a dataset with one path whose file name says
// "train", the same path with "test" in its place when that exists
// ("data/train-*.parquet" → "data/test-*.parquet"). ok is false when
// there is no such guess.
func TestData(spec *pipeline.Spec) (cfg sources.Config, ok bool) {
	c := TrainData(spec)
	if len(c.Paths) > 0 {
		return c, false
	}
	if IsBuiltin(c.Path) {
		c.Path = BuiltinTest
		return c, true
	}
	dir, base := filepath.Split(c.Path)
	if !strings.Contains(base, "train") {
		return c, false
	}
	c.Path = dir + strings.ReplaceAll(base, "train", "test")
	if m, _ := filepath.Glob(c.Path); len(m) > 0 {
		return c, true
	}
	if _, err := os.Stat(c.Path); err == nil {
		return c, true
	}
	return c, false
}
