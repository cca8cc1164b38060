package sinks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/contrastream/contrastream/pipeline"
)

// The columns of an embedding file.
const (
	// EmbIndexColumn holds the sample's Index in its dataset: int64.
	EmbIndexColumn = "index"
	// EmbLabelColumn holds the sample's label: int64, null when unlabeled.
	EmbLabelColumn = "label"
	// EmbPathColumn holds the image's file path: string, null when the
	// source has none (a Parquet row, an IDX image).
	EmbPathColumn = "path"
	// EmbVectorColumn holds the embedding: fixed_size_list<float32>[D].
	EmbVectorColumn = "embedding"
)

// EmbeddingInfoKey is the key of the file's (Parquet and Arrow schema)
// metadata under which an EmbeddingInfo is stored as JSON.
const EmbeddingInfoKey = "contrastream.embeddings"

// The kinds of vector an embedding file holds (EmbeddingInfo.Kind).
const (
	// KindFeatures is the backbone's output: what the kNN monitor and a
	// linear probe use.
	KindFeatures = "features"
	// KindProjection is the projection head's output: what the
	// contrastive loss compares.
	KindProjection = "projection"
)

// EmbeddingInfo is what an embedding file says about its vectors.
type EmbeddingInfo struct {
	// Dim is D, the length of every vector.
	Dim int `json:"dim"`
	// Kind is KindFeatures or KindProjection.
	Kind string `json:"kind"`
	// Normalized reports whether the vectors are L2-normalised. The
	// writers of this package store raw vectors (false): compare them by
	// cosine similarity, as the kNN monitor does.
	Normalized bool `json:"normalized"`
	// Checkpoint, Step and Flow name the encoder: its checkpoint folder,
	// the training step it was saved at, the flow's name.
	Checkpoint string `json:"checkpoint,omitempty"`
	Step       int64  `json:"step,omitempty"`
	Flow       string `json:"flow,omitempty"`
	// Data names the dataset the rows come from.
	Data string `json:"data,omitempty"`
	// ClassNames names the labels (label l is ClassNames[l]), when known.
	ClassNames []string `json:"class_names,omitempty"`
}

// DefaultEmbeddingRowGroupSize is EmbeddingWriterOptions.RowGroupSize when
// unset: 4,096 rows, 2 MiB of 128-dimensional vectors.
const DefaultEmbeddingRowGroupSize = 4096

// EmbeddingWriterOptions configures an EmbeddingWriter. Info.Dim is
// required; every other field's zero value means the default.
type EmbeddingWriterOptions struct {
	// Info describes the vectors; Info.Dim must be > 0.
	Info EmbeddingInfo
	// RowGroupSize is the number of rows per row group, the rows the
	// writer (and a reader) holds in memory at once. Default
	// DefaultEmbeddingRowGroupSize.
	RowGroupSize int
	// Compression is the Parquet codec: "snappy" (the default), "none",
	// "gzip" or "zstd".
	Compression string
}

// EmbeddingWriter writes one row per sample: index, label, path and the
// embedding as a fixed-size list of float32, which any Parquet reader
// (pyarrow, pandas, polars, DuckDB, Spark) reads; pyarrow sees the column
// as fixed_size_list<element: float>[D]. The file's metadata holds an
// EmbeddingInfo as JSON under EmbeddingInfoKey. It holds one row group in
// memory. It is not safe for concurrent use.
type EmbeddingWriter struct {
	opts   EmbeddingWriterOptions
	schema *arrow.Schema
	fw     *pqarrow.FileWriter
	index  *array.Int64Builder
	label  *array.Int64Builder
	path   *array.StringBuilder
	vec    *array.FixedSizeListBuilder
	vals   *array.Float32Builder
	rows   int64
	err    error
	closed bool
	out    *atomicFile // when writing to a path
}

// NewEmbeddingWriter writes an embedding file to w. Close finishes the
// file; it does not close w.
func NewEmbeddingWriter(w io.Writer, opts EmbeddingWriterOptions) (*EmbeddingWriter, error) {
	if opts.Info.Dim <= 0 {
		return nil, fmt.Errorf("sinks: embedding writer: dimension %d; want > 0", opts.Info.Dim)
	}
	if opts.RowGroupSize < 0 {
		return nil, fmt.Errorf("sinks: embedding writer: row group size %d is negative", opts.RowGroupSize)
	}
	if opts.RowGroupSize == 0 {
		opts.RowGroupSize = DefaultEmbeddingRowGroupSize
	}
	if opts.Compression == "" {
		opts.Compression = "snappy"
	}
	if opts.Info.Kind == "" {
		opts.Info.Kind = KindFeatures
	}
	codec, err := codecOf(opts.Compression)
	if err != nil {
		return nil, err
	}
	info, err := json.Marshal(opts.Info)
	if err != nil {
		return nil, err
	}
	norm := "raw (not L2-normalised)"
	if opts.Info.Normalized {
		norm = "L2-normalised"
	}
	md := arrow.NewMetadata(
		[]string{EmbeddingInfoKey, "description"},
		[]string{string(info), fmt.Sprintf("contrastream embeddings: %d-dimensional %s %s vectors, one row per sample; compare by cosine similarity", opts.Info.Dim, norm, opts.Info.Kind)})
	sc := arrow.NewSchema([]arrow.Field{
		{Name: EmbIndexColumn, Type: arrow.PrimitiveTypes.Int64},
		{Name: EmbLabelColumn, Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: EmbPathColumn, Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: EmbVectorColumn, Type: arrow.FixedSizeListOf(int32(opts.Info.Dim), arrow.PrimitiveTypes.Float32)},
	}, &md)
	props := parquet.NewWriterProperties(
		parquet.WithCompression(codec),
		parquet.WithMaxRowGroupLength(int64(opts.RowGroupSize)),
		parquet.WithDictionaryDefault(false),
	)
	fw, err := pqarrow.NewFileWriter(sc, writerOnly{w}, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		return nil, fmt.Errorf("sinks: embedding writer: %w", err)
	}
	e := &EmbeddingWriter{opts: opts, schema: sc, fw: fw,
		index: array.NewInt64Builder(memory.DefaultAllocator),
		label: array.NewInt64Builder(memory.DefaultAllocator),
		path:  array.NewStringBuilder(memory.DefaultAllocator),
		vec:   array.NewFixedSizeListBuilder(memory.DefaultAllocator, int32(opts.Info.Dim), arrow.PrimitiveTypes.Float32),
	}
	e.vals = e.vec.ValueBuilder().(*array.Float32Builder)
	return e, nil
}

// CreateEmbeddings writes an embedding file to path, atomically: rows go to
// a temporary file beside it, and Close syncs it and renames it to path.
// Until then (and after Abort or a failed Close) path is untouched.
func CreateEmbeddings(path string, opts EmbeddingWriterOptions) (*EmbeddingWriter, error) {
	out, err := createAtomic(path)
	if err != nil {
		return nil, err
	}
	e, err := NewEmbeddingWriter(out.f, opts)
	if err != nil {
		out.abort()
		return nil, err
	}
	e.out = out
	return e, nil
}

// Info is the description the file is written with (defaults filled in).
func (e *EmbeddingWriter) Info() EmbeddingInfo { return e.opts.Info }

// Write appends one row: the sample's index, its label (pipeline.NoLabel
// is stored as null), its path ("" is stored as null) and its vector of
// Info().Dim values, copied.
func (e *EmbeddingWriter) Write(index, label int64, path string, vec []float32) error {
	if e.err != nil {
		return e.err
	}
	if e.closed {
		return errors.New("sinks: embedding writer: write after Close")
	}
	if len(vec) != e.opts.Info.Dim {
		return fmt.Errorf("sinks: embedding writer: row %d (index %d): %d values; want %d", e.rows, index, len(vec), e.opts.Info.Dim)
	}
	e.index.Append(index)
	if label == pipeline.NoLabel {
		e.label.AppendNull()
	} else {
		e.label.Append(label)
	}
	if path == "" {
		e.path.AppendNull()
	} else {
		e.path.Append(path)
	}
	e.vec.Append(true)
	e.vals.AppendValues(vec, nil)
	e.rows++
	if e.index.Len() >= e.opts.RowGroupSize {
		return e.flush()
	}
	return nil
}

// Rows is the number of rows written so far.
func (e *EmbeddingWriter) Rows() int64 { return e.rows }

func (e *EmbeddingWriter) flush() error {
	if e.index.Len() == 0 {
		return nil
	}
	cols := []arrow.Array{e.index.NewArray(), e.label.NewArray(), e.path.NewArray(), e.vec.NewArray()}
	rec := array.NewRecordBatch(e.schema, cols, int64(cols[0].Len()))
	for _, c := range cols {
		c.Release()
	}
	defer rec.Release()
	if err := e.fw.Write(rec); err != nil {
		e.err = fmt.Errorf("sinks: embedding writer: %w", err)
		return e.err
	}
	return nil
}

// Close writes the last row group and the footer; when writing to a path,
// it then syncs the temporary file and renames it over the path, and on
// any error removes it, leaving the path as it was.
func (e *EmbeddingWriter) Close() error {
	if e.closed {
		return e.err
	}
	e.closed = true
	err := e.err
	if err == nil {
		err = e.flush()
	}
	if cerr := e.fw.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("sinks: embedding writer: %w", cerr)
	}
	e.release()
	if e.out != nil {
		if err != nil {
			e.out.abort()
		} else {
			err = e.out.commit()
		}
	}
	e.err = err
	return err
}

// Abort gives up: when writing to a path, the temporary file is removed
// and the path left as it was. It is a no-op after Close.
func (e *EmbeddingWriter) Abort() error {
	if e.closed {
		return nil
	}
	e.closed = true
	e.err = errors.New("sinks: embedding writer: aborted")
	e.fw.Close()
	e.release()
	if e.out != nil {
		return e.out.abort()
	}
	return nil
}

func (e *EmbeddingWriter) release() {
	e.index.Release()
	e.label.Release()
	e.path.Release()
	e.vec.Release()
}

// atomicFile is a temporary file that takes the place of target on commit.
type atomicFile struct {
	f      *os.File
	target string
}

func createAtomic(path string) (*atomicFile, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("sinks: %w", err)
	}
	return &atomicFile{f: f, target: path}, nil
}

// commit gives the file the mode of the one it replaces (or 0644), syncs
// it, renames it to the target and syncs the folder; on error it removes
// the temporary file.
func (a *atomicFile) commit() error {
	mode := os.FileMode(0o644)
	if st, err := os.Stat(a.target); err == nil {
		mode = st.Mode().Perm()
	}
	err := a.f.Chmod(mode)
	if err == nil {
		err = a.f.Sync()
	}
	if cerr := a.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(a.f.Name(), a.target)
	}
	if err != nil {
		os.Remove(a.f.Name())
		return fmt.Errorf("sinks: %s: %w", a.target, err)
	}
	syncDir(filepath.Dir(a.target))
	return nil
}

func (a *atomicFile) abort() error {
	a.f.Close()
	return os.Remove(a.f.Name())
}

// Embeddings is an embedding file read into memory: N rows of D values.
type Embeddings struct {
	// File is the path it was read from.
	File string
	// Info is the file's description; for a file written elsewhere (no
	// EmbeddingInfoKey metadata) only Dim is set.
	Info EmbeddingInfo
	// N is the number of rows, D the vector length.
	N, D int
	// Index holds each row's sample index.
	Index []int64
	// Label holds each row's label, pipeline.NoLabel where null or where
	// the file has no label column.
	Label []int64
	// Path holds each row's path, "" where null or where the file has no
	// path column.
	Path []string
	// Data holds the vectors, row-major: row i is Data[i*D : (i+1)*D].
	Data []float32

	normOnce sync.Once
	norms    []float32 // each row's L2 norm, for Nearest
}

// Vector returns row i's vector (a slice of Data).
func (e *Embeddings) Vector(i int) []float32 { return e.Data[i*e.D : (i+1)*e.D] }

// Labeled reports whether any row has a label.
func (e *Embeddings) Labeled() bool {
	for _, l := range e.Label {
		if l != pipeline.NoLabel {
			return true
		}
	}
	return false
}

// ReadEmbeddings reads the embedding file at path. It needs an integer
// column "index" without nulls and a column "embedding" of fixed-size lists
// (or lists of one length) of float32 or float64 without nulls or
// non-finite values; "label" (integer) and "path" (string) are optional.
// Other columns are not read. Every problem is an error that names the
// file and the column (and the row, for a bad value).
func ReadEmbeddings(path string) (e *Embeddings, err error) {
	defer func() {
		if r := recover(); r != nil {
			e, err = nil, fmt.Errorf("embeddings %s: corrupt file: %v", path, r)
		}
	}()
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		return nil, fmt.Errorf("embeddings %s: not a readable Parquet file: %w", path, err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: DefaultEmbeddingRowGroupSize}, memory.DefaultAllocator)
	if err != nil {
		return nil, fmt.Errorf("embeddings %s: %w", path, err)
	}
	sc, err := fr.Schema()
	if err != nil {
		return nil, fmt.Errorf("embeddings %s: schema: %w", path, err)
	}
	e = &Embeddings{File: path}
	colErr := func(col, format string, a ...any) error {
		return fmt.Errorf("embeddings %s: column %q: %s", path, col, fmt.Sprintf(format, a...))
	}
	have := func() string {
		var s string
		for i, f := range sc.Fields() {
			if i > 0 {
				s += ", "
			}
			s += f.Name + ": " + f.Type.String()
		}
		return s
	}
	find := func(name string, required bool) (int, error) {
		ii := sc.FieldIndices(name)
		switch {
		case len(ii) > 1:
			return -1, colErr(name, "appears %d times", len(ii))
		case len(ii) == 0 && required:
			return -1, fmt.Errorf("embeddings %s: no column %q (the file has %s); an embedding file has index: int64, label: int64, path: string, embedding: fixed_size_list<float32>[D]", path, name, have())
		case len(ii) == 0:
			return -1, nil
		}
		return ii[0], nil
	}
	var idx [4]int // index, label, path, embedding: schema positions or -1
	for k, c := range []struct {
		name     string
		required bool
	}{{EmbIndexColumn, true}, {EmbLabelColumn, false}, {EmbPathColumn, false}, {EmbVectorColumn, true}} {
		if idx[k], err = find(c.name, c.required); err != nil {
			return nil, err
		}
	}
	if t := sc.Field(idx[0]).Type; !isInteger(t) {
		return nil, colErr(EmbIndexColumn, "is %s; want int64", t)
	}
	if idx[1] >= 0 {
		if t := sc.Field(idx[1]).Type; !isInteger(t) {
			return nil, colErr(EmbLabelColumn, "is %s; want int64", t)
		}
	}
	if idx[2] >= 0 {
		if t := sc.Field(idx[2]).Type.ID(); t != arrow.STRING && t != arrow.LARGE_STRING {
			return nil, colErr(EmbPathColumn, "is %s; want string", sc.Field(idx[2]).Type)
		}
	}
	vt := sc.Field(idx[3]).Type
	var elem arrow.DataType
	switch t := vt.(type) {
	case *arrow.FixedSizeListType:
		elem, e.D = t.Elem(), int(t.Len())
	case *arrow.ListType:
		elem = t.Elem()
	case *arrow.LargeListType:
		elem = t.Elem()
	}
	if elem == nil || (elem.ID() != arrow.FLOAT32 && elem.ID() != arrow.FLOAT64) {
		return nil, colErr(EmbVectorColumn, "is %s; want fixed_size_list<float32>[D]", vt)
	}
	if v := sc.Metadata().FindKey(EmbeddingInfoKey); v >= 0 {
		if err := json.Unmarshal([]byte(sc.Metadata().Values()[v]), &e.Info); err != nil {
			return nil, fmt.Errorf("embeddings %s: metadata %q: %w", path, EmbeddingInfoKey, err)
		}
	}
	var leaves []int
	for _, i := range idx {
		if i >= 0 {
			leaves = appendLeaves(leaves, fr.Manifest.Fields[i])
		}
	}
	rr, err := fr.GetRecordReader(context.Background(), leaves, nil)
	if err != nil {
		return nil, fmt.Errorf("embeddings %s: %w", path, err)
	}
	defer rr.Release()
	rs := rr.Schema()
	pos := func(name string) int {
		if ii := rs.FieldIndices(name); len(ii) == 1 {
			return ii[0]
		}
		return -1
	}
	ci, cl, cp, cv := pos(EmbIndexColumn), pos(EmbLabelColumn), pos(EmbPathColumn), pos(EmbVectorColumn)
	if ci < 0 || cv < 0 {
		return nil, fmt.Errorf("embeddings %s: the columns read are %v", path, rs)
	}
	rows := int(pf.NumRows())
	prealloc := min(max(rows, 0), 1<<16)
	e.Index = make([]int64, 0, prealloc)
	e.Label = make([]int64, 0, prealloc)
	e.Path = make([]string, 0, prealloc)
	for rr.Next() {
		rec := rr.RecordBatch()
		row0 := e.N
		n := int(rec.NumRows())
		ia := rec.Column(ci)
		for i := range n {
			if ia.IsNull(i) {
				return nil, colErr(EmbIndexColumn, "row %d is null", row0+i)
			}
			e.Index = append(e.Index, intAt(ia, i))
		}
		for i := range n {
			l := int64(pipeline.NoLabel)
			if cl >= 0 && rec.Column(cl).IsValid(i) {
				if l = intAt(rec.Column(cl), i); l < 0 {
					return nil, colErr(EmbLabelColumn, "row %d is %d; want a label ≥ 0 or null", row0+i, l)
				}
			}
			e.Label = append(e.Label, l)
		}
		for i := range n {
			p := ""
			if cp >= 0 && rec.Column(cp).IsValid(i) {
				p = rec.Column(cp).ValueStr(i)
			}
			e.Path = append(e.Path, p)
		}
		if err := e.appendVectors(rec.Column(cv), row0, colErr); err != nil {
			return nil, err
		}
		e.N += n
	}
	if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("embeddings %s: %w", path, err)
	}
	if e.N == 0 {
		return nil, fmt.Errorf("embeddings %s: no rows", path)
	}
	if e.Info.Dim != 0 && e.Info.Dim != e.D {
		return nil, colErr(EmbVectorColumn, "holds %d values a row, and the metadata says %d", e.D, e.Info.Dim)
	}
	e.Info.Dim = e.D
	return e, nil
}

// appendVectors appends the vectors of one batch of the embedding column,
// checking their length (the first row fixes D for a variable list) and
// values.
func (e *Embeddings) appendVectors(col arrow.Array, row0 int, colErr func(string, string, ...any) error) error {
	var (
		values       arrow.Array
		offsets      func(i int) (int64, int64)
		listIsNullAt = col.IsNull
	)
	switch c := col.(type) {
	case *array.FixedSizeList:
		values = c.ListValues()
		offsets = c.ValueOffsets
	case *array.List:
		values = c.ListValues()
		offsets = c.ValueOffsets
	case *array.LargeList:
		values = c.ListValues()
		offsets = c.ValueOffsets
	default:
		return colErr(EmbVectorColumn, "read as %s", col.DataType())
	}
	for i := range col.Len() {
		if listIsNullAt(i) {
			return colErr(EmbVectorColumn, "row %d is null", row0+i)
		}
		start, end := offsets(i)
		n := int(end - start)
		if e.D == 0 {
			if n == 0 {
				return colErr(EmbVectorColumn, "row %d is an empty list", row0+i)
			}
			e.D = n
		}
		if n != e.D {
			return colErr(EmbVectorColumn, "row %d has %d values; earlier rows have %d", row0+i, n, e.D)
		}
		for k := start; k < end; k++ {
			var v float32
			switch vv := values.(type) {
			case *array.Float32:
				v = vv.Value(int(k))
			case *array.Float64:
				v = float32(vv.Value(int(k)))
			}
			if values.IsNull(int(k)) || math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return colErr(EmbVectorColumn, "row %d: value %d is %v; want a finite number", row0+i, int(k-start), values.ValueStr(int(k)))
			}
			e.Data = append(e.Data, v)
		}
	}
	return nil
}

func appendLeaves(dst []int, f pqarrow.SchemaField) []int {
	if f.ColIndex >= 0 && len(f.Children) == 0 {
		return append(dst, f.ColIndex)
	}
	for _, c := range f.Children {
		dst = appendLeaves(dst, c)
	}
	return dst
}

func isInteger(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT8, arrow.UINT16, arrow.UINT32:
		return true
	}
	return false
}

func intAt(a arrow.Array, i int) int64 {
	switch c := a.(type) {
	case *array.Int64:
		return c.Value(i)
	case *array.Int32:
		return int64(c.Value(i))
	case *array.Int16:
		return int64(c.Value(i))
	case *array.Int8:
		return int64(c.Value(i))
	case *array.Uint32:
		return int64(c.Value(i))
	case *array.Uint16:
		return int64(c.Value(i))
	case *array.Uint8:
		return int64(c.Value(i))
	}
	panic(fmt.Sprintf("not an integer array: %s", a.DataType()))
}

// Neighbor is a row found by Nearest.
type Neighbor struct {
	// Row is the row of the Embeddings (not the sample's Index).
	Row int
	// Similarity is the cosine similarity to the query, in [-1, 1]; 0 for a
	// zero vector.
	Similarity float32
}

// Nearest returns the k rows most similar to q (D values) by cosine
// similarity, most similar first (ties: the lower row first), leaving out
// row skip (−1 to keep every row). It costs N·D multiply-adds. It is safe
// for concurrent use once the Embeddings are no longer modified.
func (e *Embeddings) Nearest(q []float32, k, skip int) ([]Neighbor, error) {
	if len(q) != e.D {
		return nil, fmt.Errorf("embeddings %s: a query of %d values for vectors of %d", e.File, len(q), e.D)
	}
	if k <= 0 {
		return nil, fmt.Errorf("embeddings: k = %d; want > 0", k)
	}
	e.normOnce.Do(func() {
		e.norms = make([]float32, e.N)
		for i := range e.N {
			e.norms[i] = norm(e.Vector(i))
		}
	})
	qn := norm(q)
	best := make([]Neighbor, 0, k+1)
	for i := range e.N {
		if i == skip {
			continue
		}
		var s float32
		if qn > 0 && e.norms[i] > 0 {
			var dot float32
			for j, v := range e.Vector(i) {
				dot += v * q[j]
			}
			s = dot / (qn * e.norms[i])
		}
		if len(best) == k && s <= best[k-1].Similarity {
			continue
		}
		at := sort.Search(len(best), func(j int) bool { return best[j].Similarity < s })
		best = append(best, Neighbor{})
		copy(best[at+1:], best[at:])
		best[at] = Neighbor{Row: i, Similarity: s}
		if len(best) > k {
			best = best[:k]
		}
	}
	return best, nil
}

func norm(v []float32) float32 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return float32(math.Sqrt(s))
}
