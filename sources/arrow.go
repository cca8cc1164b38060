package sources

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/contrastream/contrastream/pipeline"
)

// FormatArrow is the Arrow IPC format, file or stream: files that start
// with "ARROW1" (file format) or 0xffffffff (stream format) or are named
// .arrow, .arrows, .ipc or .feather, or a folder holding such files.
const FormatArrow = "arrow"

func init() {
	exts := []string{".arrow", ".arrows", ".ipc", ".feather"}
	RegisterFormat(Format{
		Name:  FormatArrow,
		Order: 20,
		Magic: func(head []byte) bool {
			return bytes.HasPrefix(head, arrowFileMagic) || bytes.HasPrefix(head, []byte{0xff, 0xff, 0xff, 0xff})
		},
		Exts:    exts,
		Columns: true,
		Open: func(c Config, paths []string) (Dataset, error) {
			files, err := filesOf(paths, FormatArrow, exts)
			if err != nil {
				return nil, err
			}
			return openArrow(files, newColumns(c.ImageColumn, c.LabelColumn))
		},
	})
}

// arrowDataset reads Arrow IPC files one record batch at a time. The file
// format is read by random access; the stream format is indexed once at
// Open (the byte offset of each record batch), so that a batch is read
// without reading the ones before it. Like parquetDataset it reopens the
// file for each batch and is safe for concurrent use.
type arrowDataset struct {
	name    string
	columns []string // the first file's columns, "name: type"
	files   []arrowFile
	chunks  []Chunk
	where   []batchRef
	labeled bool
	classes []string
	n       int64
}

type arrowFile struct {
	path   string
	stream bool
	size   int64
	// For the stream format: the bytes of the schema message, replayed
	// before a batch's bytes.
	schemaEnd int64
	image     string
	label     string
	hf        bool
	bytesIdx  int
	columns   []string
}

type batchRef struct {
	file, batch int
	row0        int64
	off, end    int64 // stream format: the batch's bytes in the file
}

var arrowFileMagic = []byte("ARROW1")

// OpenArrow opens Arrow IPC files, file or stream format, with the given
// image and label column names ("" means "image" and "label", the label
// being optional then). See Open.
func OpenArrow(paths []string, imageColumn, labelColumn string) (Dataset, error) {
	return openArrow(paths, newColumns(imageColumn, labelColumn))
}

func openArrow(paths []string, c columns) (Dataset, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("sources: no Arrow files")
	}
	d := &arrowDataset{name: datasetName(paths)}
	for fi, p := range paths {
		af, rows, offs, classes, err := scanArrow(p, c)
		if err != nil {
			return nil, err
		}
		labeled := af.label != ""
		if fi == 0 {
			d.labeled, d.classes = labeled, classes
		} else if labeled != d.labeled {
			return nil, labelMismatch(p, paths[0], c.label, labeled)
		}
		if fi == 0 {
			d.columns = af.columns
		}
		d.files = append(d.files, af)
		var row0 int64
		for b, n := range rows {
			origin := fmt.Sprintf("%s record batch %d", p, b)
			if d.n, err = addRows(d.n, n, origin); err != nil {
				return nil, err
			}
			if n > 0 {
				ref := batchRef{file: fi, batch: b, row0: row0}
				if af.stream {
					ref.off, ref.end = offs[b], offs[b+1]
				}
				d.chunks = append(d.chunks, Chunk{First: d.n - n, Len: n, Origin: origin})
				d.where = append(d.where, ref)
			}
			row0 += n
		}
	}
	if d.n == 0 {
		return nil, fmt.Errorf("sources: %s: empty dataset: no rows", filesName(paths))
	}
	return d, nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// scanArrow checks one file's schema and reads each record batch once to
// count its rows; for the stream format it also records where each batch
// lies (offs[b] to offs[b+1]).
func scanArrow(p string, c columns) (af arrowFile, rows []int64, offs []int64, classes []string, err error) {
	defer recoverInto(&err, p)
	f, err := os.Open(p)
	if err != nil {
		return af, nil, nil, nil, fmt.Errorf("sources: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return af, nil, nil, nil, fmt.Errorf("sources: %w", err)
	}
	af = arrowFile{path: p, size: st.Size(), image: c.image}
	head := make([]byte, len(arrowFileMagic))
	if _, err := f.ReadAt(head, 0); err == nil && bytes.Equal(head, arrowFileMagic) {
		r, err := ipc.NewFileReader(f, ipc.WithAllocator(memory.DefaultAllocator))
		if err != nil {
			return af, nil, nil, nil, fmt.Errorf("sources: %s: not a readable Arrow IPC file: %w", p, err)
		}
		defer r.Close()
		if classes, err = af.plan(r.Schema(), c); err != nil {
			return af, nil, nil, nil, err
		}
		for b := range r.NumRecords() {
			rec, err := r.RecordBatchAt(b)
			if err != nil {
				return af, nil, nil, nil, fmt.Errorf("sources: %s: record batch %d: %w", p, b, err)
			}
			rows = append(rows, rec.NumRows())
			rec.Release()
		}
		return af, rows, nil, classes, nil
	}
	// Stream format.
	af.stream = true
	cr := &countingReader{r: f}
	r, err := ipc.NewReader(cr, ipc.WithAllocator(memory.DefaultAllocator), ipc.WithBodySizeLimit(af.size), ipc.WithMetadataSizeLimit(af.size))
	if err != nil {
		return af, nil, nil, nil, fmt.Errorf("sources: %s: not a readable Arrow IPC file or stream: %w", p, err)
	}
	defer r.Release()
	af.schemaEnd = cr.n
	for _, fl := range r.Schema().Fields() {
		if hasDictionary(fl.Type) {
			return af, nil, nil, nil, fmt.Errorf("sources: %s: column %q is dictionary-encoded, which this reader supports only in the Arrow IPC file format (not the stream format); convert the file", p, fl.Name)
		}
	}
	if classes, err = af.plan(r.Schema(), c); err != nil {
		return af, nil, nil, nil, err
	}
	offs = append(offs, cr.n)
	for r.Next() {
		rows = append(rows, r.RecordBatch().NumRows())
		offs = append(offs, cr.n)
	}
	if err := r.Err(); err != nil {
		return af, nil, nil, nil, fmt.Errorf("sources: %s: record batch %d: %w", p, len(rows), err)
	}
	return af, rows, offs, classes, nil
}

func hasDictionary(t arrow.DataType) bool {
	switch t := t.(type) {
	case *arrow.DictionaryType:
		return true
	case arrow.NestedType:
		for _, f := range t.Fields() {
			if hasDictionary(f.Type) {
				return true
			}
		}
	}
	return false
}

func (af *arrowFile) plan(sc *arrow.Schema, c columns) ([]string, error) {
	for _, f := range sc.Fields() {
		af.columns = append(af.columns, f.Name+": "+f.Type.String())
	}
	l, err := c.plan(sc, af.path)
	if err != nil {
		return nil, err
	}
	af.hf, af.bytesIdx = l.hf, l.bytesIdx
	if l.label < 0 {
		return nil, nil
	}
	af.label = c.label
	if md := sc.Metadata(); md.FindKey("huggingface") >= 0 {
		return hfClassNames(md.Values()[md.FindKey("huggingface")], c.label), nil
	}
	return nil, nil
}

func (d *arrowDataset) Name() string         { return d.name }
func (d *arrowDataset) Len() int64           { return d.n }
func (d *arrowDataset) Labeled() bool        { return d.labeled }
func (d *arrowDataset) Chunks() []Chunk      { return d.chunks }
func (d *arrowDataset) Close() error         { return nil }
func (d *arrowDataset) ClassNames() []string { return d.classes }

// Columns lists the first file's columns as "name: type".
func (d *arrowDataset) Columns() []string { return d.columns }

// ReadChunk reads one record batch.
func (d *arrowDataset) ReadChunk(ctx context.Context, i int) (out []pipeline.Sample, err error) {
	if err := checkChunkIndex(d.name, i, len(d.chunks)); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ref, ch := d.where[i], d.chunks[i]
	af := &d.files[ref.file]
	defer recoverInto(&err, ch.Origin)
	f, err := os.Open(af.path)
	if err != nil {
		return nil, fmt.Errorf("sources: %w", err)
	}
	defer f.Close()
	var rec arrow.RecordBatch
	if af.stream {
		src := io.MultiReader(io.NewSectionReader(f, 0, af.schemaEnd), io.NewSectionReader(f, ref.off, ref.end-ref.off))
		r, err := ipc.NewReader(src, ipc.WithAllocator(memory.DefaultAllocator), ipc.WithBodySizeLimit(af.size), ipc.WithMetadataSizeLimit(af.size))
		if err != nil {
			return nil, fmt.Errorf("sources: %s: %w", ch.Origin, err)
		}
		defer r.Release()
		if !r.Next() {
			err := r.Err()
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("sources: %s: %w", ch.Origin, err)
		}
		rec = r.RecordBatch()
		rec.Retain()
	} else {
		r, err := ipc.NewFileReader(f, ipc.WithAllocator(memory.DefaultAllocator))
		if err != nil {
			return nil, fmt.Errorf("sources: %s: %w", af.path, err)
		}
		defer r.Close()
		if rec, err = r.RecordBatchAt(ref.batch); err != nil {
			return nil, fmt.Errorf("sources: %s: %w", ch.Origin, err)
		}
	}
	defer rec.Release()
	if rec.NumRows() != ch.Len {
		return nil, fmt.Errorf("sources: %s: read %d rows, expected %d (the file changed since Open?)", ch.Origin, rec.NumRows(), ch.Len)
	}
	sc := rec.Schema()
	ii := sc.FieldIndices(af.image)
	if len(ii) == 0 {
		return nil, fmt.Errorf("sources: %s: no image column %q", ch.Origin, af.image)
	}
	var labels []int64
	if af.label != "" {
		li := sc.FieldIndices(af.label)
		if len(li) == 0 {
			return nil, fmt.Errorf("sources: %s: no label column %q", ch.Origin, af.label)
		}
		labels = labelValues([]arrow.Array{rec.Column(li[0])})
	}
	return samples(rec.Column(ii[0]), labels, af.hf, af.bytesIdx, ch.First, ref.row0, af.path)
}
