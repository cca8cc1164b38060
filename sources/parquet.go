package sources

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/contrastream/contrastream/pipeline"
)

// FormatParquet is the Parquet format: files that start with "PAR1" or
// are named .parquet, .parq or .pq, or a folder holding such files.
const FormatParquet = "parquet"

func init() {
	exts := []string{".parquet", ".parq", ".pq"}
	RegisterFormat(Format{
		Name:    FormatParquet,
		Order:   10,
		Magic:   func(head []byte) bool { return bytes.HasPrefix(head, []byte("PAR1")) },
		Exts:    exts,
		Columns: true,
		Open: func(c Config, paths []string) (Dataset, error) {
			files, err := filesOf(paths, FormatParquet, exts)
			if err != nil {
				return nil, err
			}
			return openParquet(files, newColumns(c.ImageColumn, c.LabelColumn))
		},
	})
}

// parquetDataset reads Parquet files one row group at a time. It keeps each
// file's metadata (parsed once at Open) and opens the file again for each
// row group, so it holds no file descriptor between reads and ReadChunk is
// safe for concurrent use.
type parquetDataset struct {
	name    string
	columns []string // the first file's columns, "name: type"
	files   []parquetFile
	chunks  []Chunk
	where   []rowGroupRef // where[i] locates chunk i
	labeled bool
	classes []string
	n       int64
}

type parquetFile struct {
	path   string
	data   []byte // the file's bytes, for OpenParquetBytes; else nil
	meta   *metadata.FileMetaData
	leaves []int // leaf columns to read
	image  string
	label  string // "" when unlabeled
	hf     bool
}

type rowGroupRef struct {
	file, rowGroup int
	row0           int64 // row number of the row group's first row in its file
}

// OpenParquet opens Parquet files (in the order given; Open sorts them)
// with the given image and label column names ("" means "image" and
// "label", the label being optional then). See Open.
func OpenParquet(paths []string, imageColumn, labelColumn string) (Dataset, error) {
	return openParquet(paths, newColumns(imageColumn, labelColumn))
}

// OpenParquetBytes opens a Parquet file held in memory (an embedded file),
// named name in Origins and errors. data must not be modified while the
// dataset is in use. Columns are as for OpenParquet.
func OpenParquetBytes(name string, data []byte, imageColumn, labelColumn string) (Dataset, error) {
	if data == nil {
		data = []byte{} // not nil: nil means "read the file at name"
	}
	return openParquetFiles([]string{name}, [][]byte{data}, newColumns(imageColumn, labelColumn))
}

func openParquet(paths []string, c columns) (Dataset, error) {
	return openParquetFiles(paths, nil, c)
}

// openParquetFiles opens files by path, or when data is not nil, from
// data[i], named paths[i].
func openParquetFiles(paths []string, data [][]byte, c columns) (_ Dataset, err error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("sources: no Parquet files")
	}
	d := &parquetDataset{name: datasetName(paths)}
	for fi, p := range paths {
		var b []byte
		if data != nil {
			b = data[fi]
		}
		pf, classes, cols, err := openParquetMeta(p, b, c)
		if err != nil {
			return nil, err
		}
		labeled := pf.label != ""
		if fi == 0 {
			d.labeled, d.classes, d.columns = labeled, classes, cols
		} else if labeled != d.labeled {
			return nil, labelMismatch(p, paths[0], c.label, labeled)
		}
		d.files = append(d.files, pf)
		var row0 int64
		for rg := range pf.meta.NumRowGroups() {
			origin := fmt.Sprintf("%s row group %d", p, rg)
			rows, err := pf.rowCount(rg, origin)
			if err != nil {
				return nil, err
			}
			if d.n, err = addRows(d.n, rows, origin); err != nil {
				return nil, err
			}
			if rows > 0 {
				d.chunks = append(d.chunks, Chunk{First: d.n - rows, Len: rows, Origin: origin})
				d.where = append(d.where, rowGroupRef{file: fi, rowGroup: rg, row0: row0})
			}
			row0 += rows
		}
	}
	if d.n == 0 {
		return nil, fmt.Errorf("sources: %s: empty dataset: no rows", filesName(paths))
	}
	return d, nil
}

// openParquetMeta reads and checks the footer and schema of one file (of
// data, when not nil).
func openParquetMeta(p string, data []byte, c columns) (pf parquetFile, classes, cols []string, err error) {
	defer recoverInto(&err, p)
	pf = parquetFile{path: p, data: data}
	r, err := pf.open(nil)
	if err != nil {
		return pf, nil, nil, fmt.Errorf("sources: %s: not a readable Parquet file: %w", p, err)
	}
	defer r.Close()
	fr, err := pqarrow.NewFileReader(r, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		return pf, nil, nil, fmt.Errorf("sources: %s: %w", p, err)
	}
	sc, err := fr.Schema()
	if err != nil {
		return pf, nil, nil, fmt.Errorf("sources: %s: schema: %w", p, err)
	}
	for _, f := range sc.Fields() {
		cols = append(cols, f.Name+": "+f.Type.String())
	}
	l, err := c.plan(sc, p)
	if err != nil {
		return pf, nil, nil, err
	}
	pf.meta, pf.image, pf.hf = r.MetaData(), c.image, l.hf
	// Read only the leaves needed: image bytes (not the path) and the label.
	img := fr.Manifest.Fields[l.image]
	if l.hf {
		bytesName := sc.Field(l.image).Type.(*arrow.StructType).Field(l.bytesIdx).Name
		for _, ch := range img.Children {
			if ch.Field.Name == bytesName {
				pf.leaves = append(pf.leaves, ch.ColIndex)
			}
		}
	} else {
		pf.leaves = append(pf.leaves, img.ColIndex)
	}
	if l.label >= 0 {
		pf.label = c.label
		pf.leaves = append(pf.leaves, fr.Manifest.Fields[l.label].ColIndex)
		if v := r.MetaData().KeyValueMetadata().FindValue("huggingface"); v != nil {
			classes = hfClassNames(*v, c.label)
		}
	}
	if slices.Contains(pf.leaves, -1) || len(pf.leaves) != 1+btoi(l.label >= 0) {
		return pf, nil, nil, fmt.Errorf("sources: %s: cannot locate the Parquet leaf columns of %q", p, c.image)
	}
	return pf, classes, cols, nil
}

// rowCount returns the row count the footer states for row group rg, after
// checking it against the column chunks of the leaves read. By the Parquet
// format, a column chunk's num_values counts its entries, nulls included:
// one per row for a leaf outside any repeated field (repetition level 0),
// which the image bytes and the label always are (plan accepts no list
// type). So a row count unlike such a leaf's num_values is a corrupt or
// crafted footer, rejected here, before any reading.
//
// A footer that lies in both counts cannot be caught from the metadata: no
// bound on rows from the chunk's byte size is sound, since RLE-encoded
// definition levels, delta encodings and compression store millions of null
// or empty values in a few bytes. Such a footer is made harmless instead:
// nothing is allocated from the count (ReadChunk reads in batches of
// parquetBatchRows and stops where the data ends; Each caps its
// pre-allocation), and ReadChunk reports the difference.
func (pf *parquetFile) rowCount(rg int, origin string) (int64, error) {
	md := pf.meta.RowGroup(rg)
	rows := md.NumRows()
	if rows < 0 {
		return 0, fmt.Errorf("sources: %s: negative row count %d", origin, rows)
	}
	for _, leaf := range pf.leaves {
		cc, err := md.ColumnChunk(leaf)
		if err != nil {
			return 0, fmt.Errorf("sources: %s: %w", origin, err)
		}
		col := pf.meta.Schema.Column(leaf)
		if n := cc.NumValues(); n != rows && (col.MaxRepetitionLevel() == 0 || n < rows) {
			return 0, fmt.Errorf("sources: %s: the footer says %d rows but column %q holds %d values: corrupt metadata", origin, rows, col.Path(), n)
		}
	}
	return rows, nil
}

// open opens the file, with its metadata when meta is not nil.
func (pf *parquetFile) open(meta *metadata.FileMetaData) (*file.Reader, error) {
	var opts []file.ReadOption
	if meta != nil {
		opts = append(opts, file.WithMetadata(meta))
	}
	if pf.data != nil {
		return file.NewParquetReader(bytes.NewReader(pf.data), opts...)
	}
	return file.OpenParquetFile(pf.path, false, opts...)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (d *parquetDataset) Name() string         { return d.name }
func (d *parquetDataset) Len() int64           { return d.n }
func (d *parquetDataset) Labeled() bool        { return d.labeled }
func (d *parquetDataset) Chunks() []Chunk      { return d.chunks }
func (d *parquetDataset) Close() error         { return nil }
func (d *parquetDataset) ClassNames() []string { return d.classes }

// Columns lists the first file's columns as "name: type".
func (d *parquetDataset) Columns() []string { return d.columns }

// parquetBatchRows is the number of rows ReadChunk reads from a row group
// at a time: the Parquet reader's buffers are sized by it, not by the row
// count the footer states.
const parquetBatchRows = 4096

// ReadChunk reads one row group: the image bytes and the label, nothing
// else, in batches of parquetBatchRows rows. Memory is about the row
// group's size plus one batch's while it runs. A row group whose data
// holds more or fewer rows than its footer says is an error; memory
// follows the rows read, never the footer's count.
func (d *parquetDataset) ReadChunk(ctx context.Context, i int) (out []pipeline.Sample, err error) {
	if err := checkChunkIndex(d.name, i, len(d.chunks)); err != nil {
		return nil, err
	}
	ref, ch := d.where[i], d.chunks[i]
	pf := &d.files[ref.file]
	defer recoverInto(&err, ch.Origin)
	r, err := pf.open(pf.meta)
	if err != nil {
		return nil, fmt.Errorf("sources: %s: %w", pf.path, err)
	}
	defer r.Close()
	fr, err := pqarrow.NewFileReader(r, pqarrow.ArrowReadProperties{BatchSize: parquetBatchRows}, memory.DefaultAllocator)
	if err != nil {
		return nil, fmt.Errorf("sources: %s: %w", pf.path, err)
	}
	rr, err := fr.GetRecordReader(ctx, pf.leaves, []int{ref.rowGroup})
	if err != nil {
		return nil, fmt.Errorf("sources: %s: %w", ch.Origin, err)
	}
	defer rr.Release()
	cols, err := readColumns(rr.Schema(), pf.image, pf.label, pf.hf)
	if err != nil {
		return nil, fmt.Errorf("sources: %s: %w", ch.Origin, err)
	}
	out = make([]pipeline.Sample, 0, preallocLen(ch.Len))
	var off int64
	for rr.Next() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rec := rr.RecordBatch()
		n := rec.NumRows()
		if off+n > ch.Len {
			return nil, fmt.Errorf("sources: %s: the data holds more rows than the %d the footer says", ch.Origin, ch.Len)
		}
		var labels []int64
		if cols.label >= 0 {
			labels = labelValues([]arrow.Array{rec.Column(cols.label)})
		}
		s, err := samples(rec.Column(cols.image), labels, pf.hf, cols.bytesIdx, ch.First+off, ref.row0+off, pf.path)
		if err != nil {
			return nil, err
		}
		if int64(len(s)) != n {
			return nil, fmt.Errorf("sources: %s: a batch of %d rows has %d images", ch.Origin, n, len(s))
		}
		out = append(out, s...)
		off += n
	}
	if err := rr.Err(); err != nil {
		return nil, fmt.Errorf("sources: %s: %w", ch.Origin, err)
	}
	if off != ch.Len {
		return nil, fmt.Errorf("sources: %s: read %d rows, the footer says %d", ch.Origin, off, ch.Len)
	}
	return out, nil
}

// readColumns locates the columns in the schema of batches as read: the
// image column, when hf the index of "bytes" in its struct (which holds
// only that child then), and the label column, -1 when label is "".
func readColumns(sc *arrow.Schema, image, label string, hf bool) (l layout, err error) {
	l = layout{image: -1, label: -1}
	ii := sc.FieldIndices(image)
	if len(ii) == 0 {
		return l, fmt.Errorf("image column %q not read", image)
	}
	l.image, l.hf = ii[0], hf
	if hf {
		t := sc.Field(l.image).Type
		st, ok := t.(*arrow.StructType)
		if !ok {
			return l, fmt.Errorf("image column %q read as %s, not a struct", image, t)
		}
		if l.bytesIdx, ok = st.FieldIdx("bytes"); !ok {
			return l, fmt.Errorf("image column %q read as %s, without its bytes", image, t)
		}
	}
	if label != "" {
		li := sc.FieldIndices(label)
		if len(li) == 0 {
			return l, fmt.Errorf("label column %q not read", label)
		}
		l.label = li[0]
	}
	return l, nil
}

// recoverInto turns a panic of the Arrow or Parquet libraries (seen on
// corrupt files) into an error naming where.
func recoverInto(err *error, where string) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("sources: %s: corrupt data (the reader panicked: %v)", where, r)
	}
}

// labelMismatch is the error for files that disagree on having labels.
func labelMismatch(file, first, label string, labeled bool) error {
	if labeled {
		return fmt.Errorf("sources: %s has a label column %q but %s has none; all files must agree", file, label, first)
	}
	return fmt.Errorf("sources: %s has no label column %q but %s has one; all files must agree", file, label, first)
}

// filesName names files in an error: the path, or the first path and how
// many others.
func filesName(paths []string) string {
	if len(paths) == 1 {
		return paths[0]
	}
	return fmt.Sprintf("%s and %d more files", paths[0], len(paths)-1)
}

// datasetName names a dataset of files: the file's name, or the first
// file's name and how many there are.
func datasetName(paths []string) string {
	if len(paths) == 1 {
		return filepath.Base(paths[0])
	}
	return fmt.Sprintf("%s (+%d files)", filepath.Base(paths[0]), len(paths)-1)
}
