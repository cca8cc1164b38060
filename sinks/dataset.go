package sinks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
	"path/filepath"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/contrastream/contrastream/pipeline"
)

// DefaultRowGroupSize is DatasetWriterOptions.RowGroupSize when unset.
const DefaultRowGroupSize = 1000

// DatasetWriterOptions configures a DatasetWriter. The zero value means the
// defaults.
type DatasetWriterOptions struct {
	// RowGroupSize is the number of rows per row group: the unit a reader
	// holds in memory. Default DefaultRowGroupSize.
	RowGroupSize int
	// Compression is the Parquet codec: "" or "none" (the default: PNG and
	// JPEG bytes do not compress further), "snappy", "gzip" or "zstd".
	Compression string
	// ClassNames, when set, names the labels (label l is ClassNames[l]) in
	// the Hugging Face metadata, as a ClassLabel feature; a label outside
	// it is then an error.
	ClassNames []string
	// Unlabeled writes no label column; Write then takes NoLabel only.
	Unlabeled bool
}

// DatasetWriter writes images and labels as Parquet in the Hugging Face
// image layout: a column image: struct<bytes: binary, path: string> and a
// column label: int64, with the "huggingface" schema metadata that lets the
// datasets library (and sources) see an Image feature and a ClassLabel.
// It holds one row group in memory. It is not safe for concurrent use.
type DatasetWriter struct {
	opts   DatasetWriterOptions
	schema *arrow.Schema
	fw     *pqarrow.FileWriter
	img    *array.StructBuilder
	bin    *array.BinaryBuilder
	path   *array.StringBuilder
	label  *array.Int64Builder
	rows   int64
	err    error // first error: the writer is then broken
	closed bool

	// Set when writing to a path: the temporary file and its target.
	tmp    *os.File
	target string
}

// writerOnly hides an *os.File's Close from the Parquet writer, which
// closes what it can, so that Close can fsync first.
type writerOnly struct{ w io.Writer }

func (w writerOnly) Write(p []byte) (int, error) { return w.w.Write(p) }

// NewDatasetWriter writes a dataset to w. Close finishes the file; it does
// not close w.
func NewDatasetWriter(w io.Writer, opts DatasetWriterOptions) (*DatasetWriter, error) {
	if opts.RowGroupSize < 0 {
		return nil, fmt.Errorf("sinks: dataset writer: row group size %d is negative", opts.RowGroupSize)
	}
	if opts.RowGroupSize == 0 {
		opts.RowGroupSize = DefaultRowGroupSize
	}
	if opts.Unlabeled && len(opts.ClassNames) > 0 {
		return nil, errors.New("sinks: dataset writer: class names given for an unlabeled dataset")
	}
	codec, err := codecOf(opts.Compression)
	if err != nil {
		return nil, err
	}
	fields := []arrow.Field{{Name: "image", Nullable: true, Type: arrow.StructOf(
		arrow.Field{Name: "bytes", Type: arrow.BinaryTypes.Binary, Nullable: true},
		arrow.Field{Name: "path", Type: arrow.BinaryTypes.String, Nullable: true},
	)}}
	features := map[string]any{"image": map[string]any{"_type": "Image"}}
	if !opts.Unlabeled {
		fields = append(fields, arrow.Field{Name: "label", Type: arrow.PrimitiveTypes.Int64, Nullable: true})
		if len(opts.ClassNames) > 0 {
			features["label"] = map[string]any{"_type": "ClassLabel", "names": opts.ClassNames}
		} else {
			features["label"] = map[string]any{"_type": "Value", "dtype": "int64"}
		}
	}
	hf, err := json.Marshal(map[string]any{"info": map[string]any{"features": features}})
	if err != nil {
		return nil, err
	}
	md := arrow.NewMetadata([]string{"huggingface"}, []string{string(hf)})
	schema := arrow.NewSchema(fields, &md)
	props := parquet.NewWriterProperties(
		parquet.WithCompression(codec),
		parquet.WithMaxRowGroupLength(int64(opts.RowGroupSize)),
		parquet.WithDictionaryDefault(false),
		parquet.WithStatsFor("image.bytes", false),
		parquet.WithStatsFor("image.path", false),
	)
	fw, err := pqarrow.NewFileWriter(schema, writerOnly{w}, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		return nil, fmt.Errorf("sinks: dataset writer: %w", err)
	}
	d := &DatasetWriter{opts: opts, schema: schema, fw: fw}
	d.img = array.NewStructBuilder(memory.DefaultAllocator, fields[0].Type.(*arrow.StructType))
	d.bin = d.img.FieldBuilder(0).(*array.BinaryBuilder)
	d.path = d.img.FieldBuilder(1).(*array.StringBuilder)
	if !opts.Unlabeled {
		d.label = array.NewInt64Builder(memory.DefaultAllocator)
	}
	return d, nil
}

// CreateDataset writes a dataset to the file path, atomically: rows go to
// a temporary file beside it, and Close syncs it and renames it to path.
// Until then (and after Abort or a failed Close) path is untouched.
func CreateDataset(path string, opts DatasetWriterOptions) (*DatasetWriter, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("sinks: %w", err)
	}
	d, err := NewDatasetWriter(tmp, opts)
	if err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, err
	}
	d.tmp, d.target = tmp, path
	return d, nil
}

func codecOf(name string) (compress.Compression, error) {
	switch name {
	case "", "none", "uncompressed":
		return compress.Codecs.Uncompressed, nil
	case "snappy":
		return compress.Codecs.Snappy, nil
	case "gzip":
		return compress.Codecs.Gzip, nil
	case "zstd":
		return compress.Codecs.Zstd, nil
	}
	return 0, fmt.Errorf("sinks: dataset writer: compression %q is not one of none, snappy, gzip, zstd", name)
}

// Write appends one row: img, the encoded image (PNG or JPEG; not checked),
// path, the image's file name (may be "", stored as null), and label
// (pipeline.NoLabel is stored as null).
func (d *DatasetWriter) Write(img []byte, path string, label int64) error {
	if d.err != nil {
		return d.err
	}
	if d.closed {
		return errors.New("sinks: dataset writer: write after Close")
	}
	if len(img) == 0 {
		return fmt.Errorf("sinks: dataset writer: row %d: empty image", d.rows)
	}
	if d.opts.Unlabeled && label != pipeline.NoLabel {
		return fmt.Errorf("sinks: dataset writer: row %d: label %d for an unlabeled dataset", d.rows, label)
	}
	if label < pipeline.NoLabel || (len(d.opts.ClassNames) > 0 && label >= int64(len(d.opts.ClassNames))) {
		return fmt.Errorf("sinks: dataset writer: row %d: label %d outside the %d class names", d.rows, label, len(d.opts.ClassNames))
	}
	d.img.Append(true)
	d.bin.Append(img)
	if path == "" {
		d.path.AppendNull()
	} else {
		d.path.Append(path)
	}
	if d.label != nil {
		if label == pipeline.NoLabel {
			d.label.AppendNull()
		} else {
			d.label.Append(label)
		}
	}
	d.rows++
	if d.img.Len() >= d.opts.RowGroupSize {
		return d.flush()
	}
	return nil
}

// WriteSample appends s: its Encoded bytes as they are, or else its Image
// encoded as PNG, with its Label and no path. Use it with sources.Each to
// convert a dataset (IDX, a folder) to Parquet.
func (d *DatasetWriter) WriteSample(s pipeline.Sample) error {
	b := s.Encoded
	if len(b) == 0 {
		if s.Image == nil {
			return fmt.Errorf("sinks: dataset writer: %s: no image", s.Origin)
		}
		var err error
		if b, err = EncodePNG(s.Image); err != nil {
			return fmt.Errorf("sinks: dataset writer: %s: %w", s.Origin, err)
		}
	}
	return d.Write(b, "", s.Label)
}

// Rows is the number of rows written so far.
func (d *DatasetWriter) Rows() int64 { return d.rows }

// flush writes the buffered rows as one row group.
func (d *DatasetWriter) flush() error {
	if d.img.Len() == 0 {
		return nil
	}
	cols := []arrow.Array{d.img.NewArray()}
	if d.label != nil {
		cols = append(cols, d.label.NewArray())
	}
	rec := array.NewRecordBatch(d.schema, cols, int64(cols[0].Len()))
	for _, c := range cols {
		c.Release()
	}
	defer rec.Release()
	if err := d.fw.Write(rec); err != nil {
		d.err = fmt.Errorf("sinks: dataset writer: %w", err)
		return d.err
	}
	return nil
}

// Close writes the last row group and the footer. When writing to a path,
// it then syncs the temporary file and renames it over the path; on any
// error it removes the temporary file and leaves the path as it was.
func (d *DatasetWriter) Close() error {
	if d.closed {
		return d.err
	}
	d.closed = true
	err := d.err
	if err == nil {
		err = d.flush()
	}
	if cerr := d.fw.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("sinks: dataset writer: %w", cerr)
	}
	d.release()
	if d.tmp == nil {
		d.err = err
		return err
	}
	if err == nil {
		// CreateTemp makes the file private; give it the mode of the file
		// it replaces, or the usual 0644.
		mode := os.FileMode(0o644)
		if st, serr := os.Stat(d.target); serr == nil {
			mode = st.Mode().Perm()
		}
		err = d.tmp.Chmod(mode)
	}
	if err == nil {
		err = d.tmp.Sync()
	}
	if cerr := d.tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(d.tmp.Name(), d.target)
	}
	if err != nil {
		os.Remove(d.tmp.Name())
		d.err = fmt.Errorf("sinks: %s: %w", d.target, err)
		return d.err
	}
	syncDir(filepath.Dir(d.target))
	return nil
}

// Abort gives up: when writing to a path, the temporary file is removed and
// the path left as it was. It is a no-op after Close.
func (d *DatasetWriter) Abort() error {
	if d.closed {
		return nil
	}
	d.closed = true
	d.err = errors.New("sinks: dataset writer: aborted")
	d.fw.Close()
	d.release()
	if d.tmp != nil {
		d.tmp.Close()
		return os.Remove(d.tmp.Name())
	}
	return nil
}

func (d *DatasetWriter) release() {
	d.img.Release()
	if d.label != nil {
		d.label.Release()
	}
}

// syncDir makes a rename in dir durable where the system allows it.
func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		f.Sync()
		f.Close()
	}
}

// EncodePNG encodes img as PNG at the best compression: small files for a
// dataset stored in a repository. A *image.Gray stays 8-bit gray.
func EncodePNG(img image.Image) ([]byte, error) {
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
