package sources

import (
	"cmp"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/contrastream/contrastream/pipeline"
)

// columns names the image and label columns of a Parquet or Arrow dataset.
type columns struct {
	image, label string
	labelSet     bool // the label column was named explicitly: it must exist
}

// The default column names of Parquet and Arrow datasets: the Hugging Face
// layout's.
const (
	defaultImageColumn = "image"
	defaultLabelColumn = "label"
)

// newColumns names the image and label columns; "" means the defaults,
// "image" and "label", the label being optional then: a dataset without a
// "label" column is unlabeled, while a label column named explicitly must
// exist.
func newColumns(image, label string) columns {
	return columns{
		image:    cmp.Or(image, defaultImageColumn),
		label:    cmp.Or(label, defaultLabelColumn),
		labelSet: label != "",
	}
}

// layout is what a file's schema says about the two columns.
type layout struct {
	image    int  // top-level field index of the image column
	hf       bool // struct<bytes, path> (Hugging Face) rather than plain binary
	bytesIdx int  // index of the "bytes" child when hf
	label    int  // top-level field index of the label column, or -1
}

// isBinary reports whether t holds image bytes.
func isBinary(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.BINARY, arrow.LARGE_BINARY, arrow.BINARY_VIEW:
		return true
	}
	return false
}

func isInteger(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64,
		arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64:
		return true
	}
	return false
}

// plan checks sc for the columns and says where they are. Errors name file
// and column.
func (c columns) plan(sc *arrow.Schema, file string) (layout, error) {
	l := layout{image: -1, label: -1}
	idx := sc.FieldIndices(c.image)
	if len(idx) == 0 {
		return l, fmt.Errorf("sources: %s: no image column %q (columns: %s); set image_column", file, c.image, fieldNames(sc))
	}
	l.image = idx[0]
	t := sc.Field(l.image).Type
	switch {
	case isBinary(t):
	case t.ID() == arrow.STRUCT:
		st := t.(*arrow.StructType)
		bi, ok := st.FieldIdx("bytes")
		if !ok || !isBinary(st.Field(bi).Type) {
			return l, fmt.Errorf("sources: %s: column %q has type %s; want struct<bytes: binary, path: string> or binary", file, c.image, t)
		}
		l.hf, l.bytesIdx = true, bi
	default:
		return l, fmt.Errorf("sources: %s: column %q has type %s; want struct<bytes: binary, path: string> or binary", file, c.image, t)
	}
	if idx := sc.FieldIndices(c.label); len(idx) > 0 {
		l.label = idx[0]
		if t := sc.Field(l.label).Type; !isInteger(t) {
			return l, fmt.Errorf("sources: %s: column %q has type %s; want an integer label (int64 or int32)", file, c.label, t)
		}
	} else if c.labelSet {
		return l, fmt.Errorf("sources: %s: no label column %q (columns: %s)", file, c.label, fieldNames(sc))
	}
	return l, nil
}

func fieldNames(sc *arrow.Schema) string {
	s := ""
	for i, f := range sc.Fields() {
		if i > 0 {
			s += ", "
		}
		s += strconv.Quote(f.Name)
	}
	return s
}

// binaryValues is what the binary array types have in common.
type binaryValues interface {
	arrow.Array
	Value(i int) []byte
}

// samples turns an image column of a batch, and its labels (nil when
// unlabeled), into samples. first is the Index of the batch's first row,
// row0 its row number in file. Bytes are copied into one new buffer per
// batch, so the samples own them once the batch is released. The batch's
// length comes from the file: the result is not pre-allocated from it
// beyond maxPrealloc.
func samples(img arrow.Array, lab []int64, hf bool, bytesIdx int, first, row0 int64, file string) ([]pipeline.Sample, error) {
	n := img.Len()
	var bin binaryValues
	valid := func(i int) bool { return img.IsValid(i) }
	if hf {
		st, ok := img.(*array.Struct)
		if !ok {
			return nil, fmt.Errorf("sources: %s: image column is %s, not a struct", file, img.DataType())
		}
		b, ok := st.Field(bytesIdx).(binaryValues)
		if !ok {
			return nil, fmt.Errorf("sources: %s: image bytes are %s, not binary", file, st.Field(bytesIdx).DataType())
		}
		bin = b
		valid = func(i int) bool { return st.IsValid(i) && b.IsValid(i) }
	} else {
		b, ok := img.(binaryValues)
		if !ok {
			return nil, fmt.Errorf("sources: %s: image column is %s, not binary", file, img.DataType())
		}
		bin = b
	}
	if lab != nil && len(lab) != n {
		return nil, fmt.Errorf("sources: %s: rows %d-%d: %d labels for %d images", file, row0, row0+int64(n)-1, len(lab), n)
	}
	total := 0
	for i := range n {
		if valid(i) {
			total += len(bin.Value(i))
		}
	}
	buf := make([]byte, 0, total) // total: bytes the values actually hold
	out := make([]pipeline.Sample, 0, preallocLen(int64(n)))
	for i := range n {
		s := pipeline.Sample{
			Index:  first + int64(i),
			Label:  pipeline.NoLabel,
			Origin: file + " row " + strconv.FormatInt(row0+int64(i), 10),
		}
		if valid(i) {
			if v := bin.Value(i); len(v) > 0 {
				start := len(buf)
				buf = append(buf, v...)
				s.Encoded = buf[start:len(buf):len(buf)]
			}
		}
		if lab != nil {
			s.Label = lab[i]
		}
		out = append(out, s)
	}
	return out, nil
}

// labelValues flattens an integer column's chunks; a null is NoLabel. The
// chunks' lengths come from the file: the result is not pre-allocated from
// them beyond maxPrealloc.
func labelValues(chunks []arrow.Array) []int64 {
	n := int64(0)
	for _, c := range chunks {
		n += int64(c.Len())
	}
	out := make([]int64, 0, preallocLen(n))
	for _, c := range chunks {
		for i := range c.Len() {
			if c.IsValid(i) {
				out = append(out, labelAt(c, i))
			} else {
				out = append(out, pipeline.NoLabel)
			}
		}
	}
	return out
}

func labelAt(a arrow.Array, i int) int64 {
	switch a := a.(type) {
	case *array.Int8:
		return int64(a.Value(i))
	case *array.Int16:
		return int64(a.Value(i))
	case *array.Int32:
		return int64(a.Value(i))
	case *array.Int64:
		return a.Value(i)
	case *array.Uint8:
		return int64(a.Value(i))
	case *array.Uint16:
		return int64(a.Value(i))
	case *array.Uint32:
		return int64(a.Value(i))
	case *array.Uint64:
		return int64(a.Value(i))
	}
	return pipeline.NoLabel
}

// hfClassNames reads the ClassLabel names of column label from the
// "huggingface" schema metadata that the datasets library (and
// sinks.DatasetWriter) store. It returns nil when there are none.
func hfClassNames(meta string, label string) []string {
	var m struct {
		Info struct {
			Features map[string]struct {
				Type  string   `json:"_type"`
				Names []string `json:"names"`
			} `json:"features"`
		} `json:"info"`
	}
	if json.Unmarshal([]byte(meta), &m) != nil {
		return nil
	}
	f := m.Info.Features[label]
	if f.Type != "ClassLabel" {
		return nil
	}
	return f.Names
}
