package safetensors

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Tensor is one named array. Exactly one of F32 and I64 holds its values,
// in row-major order; len(values) is the product of Shape.
type Tensor struct {
	// DType is "F32" or "I64" after reading ("F64" data is read into F32,
	// "I32" into I64); when writing, "" means F32 or I64 by which slice is set.
	DType string
	// Shape lists the dimensions; empty for a scalar.
	Shape []int
	// F32 holds float values.
	F32 []float32
	// I64 holds integer values.
	I64 []int64
}

// Len is the number of values the shape implies.
func (t Tensor) Len() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// File is the content of a safetensors file.
type File struct {
	// Metadata is the header's "__metadata__" map; nil when absent.
	Metadata map[string]string
	// Tensors maps names to tensors.
	Tensors map[string]Tensor
}

// Names returns the tensor names in sorted order.
func (f *File) Names() []string {
	names := make([]string, 0, len(f.Tensors))
	for n := range f.Tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// F32 returns the float tensor called name, or an error naming the file's
// problem (missing, or not a float tensor, or not of the given shape when
// shape is not nil).
func (f *File) F32(name string, shape ...int) ([]float32, error) {
	t, ok := f.Tensors[name]
	if !ok {
		return nil, fmt.Errorf("safetensors: no tensor %q", name)
	}
	if t.F32 == nil {
		return nil, fmt.Errorf("safetensors: tensor %q is %s, not a float tensor", name, t.DType)
	}
	if shape != nil && !slices.Equal(shape, t.Shape) {
		return nil, fmt.Errorf("safetensors: tensor %q has shape %v, want %v", name, t.Shape, shape)
	}
	return t.F32, nil
}

type entry struct {
	DType   string   `json:"dtype"`
	Shape   []int    `json:"shape"`
	Offsets [2]int64 `json:"data_offsets"`
}

// maxHeader bounds the JSON header, as the reference implementation does
// (100 MB), so a corrupt length cannot ask for any amount of memory.
const maxHeader = 100 << 20

// Read reads the safetensors file at path.
func Read(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// Decode parses a safetensors file held in b. It checks the layout as the
// format's specification asks: the header is a JSON object; each tensor's
// data_offsets, relative to the data after the header, lie inside the data
// and span dtype size × product(shape) bytes; no two tensors share a byte
// (aliased tensors are refused); and the tensors cover every byte of the
// data, with no gap before, between or after them. Empty tensors hold no
// bytes and may sit at any boundary, but not inside another tensor.
func Decode(b []byte) (*File, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("safetensors: %d bytes, too short for a header", len(b))
	}
	n := binary.LittleEndian.Uint64(b)
	if n > maxHeader || n > uint64(len(b)-8) {
		return nil, fmt.Errorf("safetensors: header of %d bytes does not fit the file of %d", n, len(b))
	}
	header := b[8 : 8+n]
	if len(header) == 0 || header[0] != '{' {
		return nil, fmt.Errorf("safetensors: header is not a JSON object")
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(header, &raw); err != nil {
		return nil, fmt.Errorf("safetensors: header: %w", err)
	}
	data := b[8+n:]
	f := &File{}
	var entries []named
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &f.Metadata); err != nil {
				return nil, fmt.Errorf("safetensors: __metadata__: %w", err)
			}
			continue
		}
		var e entry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, fmt.Errorf("safetensors: tensor %q: %w", name, err)
		}
		entries = append(entries, named{name, e})
	}
	// In name order, so that a file with several faults always gets the
	// same error.
	slices.SortFunc(entries, func(a, b named) int { return strings.Compare(a.name, b.name) })
	for _, e := range entries {
		if err := checkEntry(e.name, e.entry, len(data)); err != nil {
			return nil, err
		}
	}
	if err := checkLayout(entries, int64(len(data))); err != nil {
		return nil, err
	}
	f.Tensors = make(map[string]Tensor, len(entries))
	for _, e := range entries {
		f.Tensors[e.name] = decodeTensor(e.entry, data)
	}
	return f, nil
}

type named struct {
	name string
	entry
}

// elemSize is the size in bytes of one value of each dtype read.
var elemSize = map[string]int{"F32": 4, "F64": 8, "I64": 8, "I32": 4}

// checkEntry checks one tensor's dtype, shape and offsets against a data
// region of size bytes.
func checkEntry(name string, e entry, size int) error {
	n := 1
	for _, d := range e.Shape {
		if d < 0 || (d > 0 && n > math.MaxInt32/d) {
			return fmt.Errorf("safetensors: tensor %q: bad shape %v", name, e.Shape)
		}
		n *= d
	}
	es := elemSize[e.DType]
	if es == 0 {
		return fmt.Errorf("safetensors: tensor %q: dtype %s not supported (F32, F64, I64, I32)", name, e.DType)
	}
	lo, hi := e.Offsets[0], e.Offsets[1]
	if lo < 0 || hi < lo || hi > int64(size) || hi-lo != int64(n*es) {
		return fmt.Errorf("safetensors: tensor %q: data offsets [%d, %d) do not hold %d×%s in %d bytes", name, lo, hi, n, e.DType, size)
	}
	return nil
}

// checkLayout checks that the tensors, each already inside the data,
// cover its size bytes exactly once.
func checkLayout(entries []named, size int64) error {
	byOffset := slices.Clone(entries)
	slices.SortStableFunc(byOffset, func(a, b named) int {
		if c := cmp.Compare(a.Offsets[0], b.Offsets[0]); c != 0 {
			return c
		}
		return cmp.Compare(a.Offsets[1], b.Offsets[1])
	})
	var end int64 // the bytes before end belong to a tensor: last, or one before it
	var last named
	for i, e := range byOffset {
		lo, hi := e.Offsets[0], e.Offsets[1]
		switch {
		case lo < end:
			return fmt.Errorf("safetensors: tensors %q [%d, %d) and %q [%d, %d) overlap", last.name, last.Offsets[0], last.Offsets[1], e.name, lo, hi)
		case lo > end:
			return fmt.Errorf("safetensors: bytes [%d, %d) of the data belong to no tensor", end, lo)
		}
		if hi > end || i == 0 {
			end, last = hi, e
		}
	}
	if end != size {
		return fmt.Errorf("safetensors: bytes [%d, %d) of the data belong to no tensor", end, size)
	}
	return nil
}

// decodeTensor decodes a tensor that checkEntry accepted.
func decodeTensor(e entry, data []byte) Tensor {
	t := Tensor{Shape: e.Shape}
	n := t.Len()
	raw := data[e.Offsets[0]:e.Offsets[1]]
	switch e.DType {
	case "F32":
		t.DType, t.F32 = "F32", make([]float32, n)
		for i := range t.F32 {
			t.F32[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case "F64":
		t.DType, t.F32 = "F32", make([]float32, n)
		for i := range t.F32 {
			t.F32[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:])))
		}
	case "I64":
		t.DType, t.I64 = "I64", make([]int64, n)
		for i := range t.I64 {
			t.I64[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
		}
	case "I32":
		t.DType, t.I64 = "I64", make([]int64, n)
		for i := range t.I64 {
			t.I64[i] = int64(int32(binary.LittleEndian.Uint32(raw[4*i:])))
		}
	}
	return t
}

// Encode writes tensors and metadata in the safetensors format to w. The
// tensors are laid out in sorted name order, so the same input always
// gives the same bytes.
func Encode(w io.Writer, tensors map[string]Tensor, metadata map[string]string) error {
	names := make([]string, 0, len(tensors))
	for n := range tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	header := make(map[string]any, len(tensors)+1)
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	var off int64
	for _, n := range names {
		t := tensors[n]
		dtype, size := "F32", 4
		if t.F32 == nil && t.I64 != nil {
			dtype, size = "I64", 8
		}
		if l := max(len(t.F32), len(t.I64)); l != t.Len() {
			return fmt.Errorf("safetensors: tensor %q: %d values for shape %v", n, l, t.Shape)
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		header[n] = entry{DType: dtype, Shape: shape, Offsets: [2]int64{off, off + int64(t.Len()*size)}}
		off += int64(t.Len() * size)
	}
	h, err := json.Marshal(header)
	if err != nil {
		return err
	}
	// Pad the header with spaces so the data starts 8-byte aligned, as the
	// reference implementation does.
	if pad := (8 - len(h)%8) % 8; pad > 0 {
		h = append(h, bytes.Repeat([]byte{' '}, pad)...)
	}
	buf := make([]byte, 8, 8+len(h))
	binary.LittleEndian.PutUint64(buf, uint64(len(h)))
	if _, err := w.Write(append(buf, h...)); err != nil {
		return err
	}
	for _, n := range names {
		t := tensors[n]
		var b []byte
		if t.F32 != nil || t.I64 == nil {
			b = make([]byte, 4*len(t.F32))
			for i, v := range t.F32 {
				binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
			}
		} else {
			b = make([]byte, 8*len(t.I64))
			for i, v := range t.I64 {
				binary.LittleEndian.PutUint64(b[8*i:], uint64(v))
			}
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// Write writes tensors to path atomically: a temporary file in the same
// folder, fsync, rename, so a reader sees the old file or the new one,
// never half of one.
func Write(path string, tensors map[string]Tensor, metadata map[string]string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := Encode(tmp, tensors, metadata); err != nil {
		tmp.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
