package safetensors

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// testdata/infonce.safetensors was written by PyTorch's safetensors
// package (a copy of the project's reference vectors).
func TestReadPyTorchFile(t *testing.T) {
	f, err := Read(filepath.Join("testdata", "infonce.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata["temperature"] != "0.2" {
		t.Errorf("metadata %v", f.Metadata)
	}
	if got := f.Names(); !slices.Equal(got, []string{"grad_q", "k", "loss", "q", "queue"}) {
		t.Errorf("names %v", got)
	}
	q, err := f.F32("q", 8, 16)
	if err != nil || len(q) != 128 {
		t.Fatalf("q: %v", err)
	}
	if _, err := f.F32("q", 16, 8); err == nil {
		t.Error("a wrong shape was accepted")
	}
	if _, err := f.F32("nope"); err == nil {
		t.Error("a missing tensor was found")
	}
}

func TestRoundTrip(t *testing.T) {
	in := map[string]Tensor{
		"w":      {Shape: []int{2, 3}, F32: []float32{1, -2, 3.5, 0, 1e-7, -1e30}},
		"labels": {Shape: []int{3}, I64: []int64{7, -1, 1 << 40}},
		"scalar": {Shape: []int{}, F32: []float32{42}},
	}
	var buf bytes.Buffer
	if err := Encode(&buf, in, map[string]string{"step": "3"}); err != nil {
		t.Fatal(err)
	}
	if n := binary.LittleEndian.Uint64(buf.Bytes()); (8+n)%8 != 0 {
		t.Errorf("data starts at %d, not 8-byte aligned", 8+n)
	}
	f, err := Decode(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range in {
		got := f.Tensors[name]
		if !slices.Equal(got.Shape, want.Shape) || !slices.Equal(got.F32, want.F32) || !slices.Equal(got.I64, want.I64) {
			t.Errorf("%s: got %+v, want %+v", name, got, want)
		}
	}
	if f.Metadata["step"] != "3" {
		t.Errorf("metadata %v", f.Metadata)
	}
	var again bytes.Buffer
	Encode(&again, in, map[string]string{"step": "3"})
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Error("encoding is not deterministic")
	}
	path := filepath.Join(t.TempDir(), "model.safetensors")
	if err := Write(path, in, nil); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("written file: %v, %v", st, err)
	}
	if err := Encode(&buf, map[string]Tensor{"bad": {Shape: []int{2}, F32: []float32{1}}}, nil); err == nil {
		t.Error("a tensor whose values do not fill its shape was written")
	}
}

func TestDecodeRejectsBadInput(t *testing.T) {
	good, _ := os.ReadFile(filepath.Join("testdata", "infonce.safetensors"))
	huge := binary.LittleEndian.AppendUint64(nil, 1<<40)
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "too short"},
		{"header longer than file", huge, "does not fit"},
		{"truncated data", good[:len(good)-4], "data offsets"},
		{"not JSON", append(binary.LittleEndian.AppendUint64(nil, 3), "abc"...), "header"},
		{"unknown dtype", withHeader(`{"x":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]}}`, 2), "not supported"},
		{"negative shape", withHeader(`{"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, 4), "bad shape"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.b)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Decode = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func withHeader(h string, data int) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	return append(append(b, h...), make([]byte, data)...)
}

func FuzzDecode(f *testing.F) {
	good, _ := os.ReadFile(filepath.Join("testdata", "infonce.safetensors"))
	f.Add(good)
	f.Add(withHeader(`{"x":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}}`, 16))
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Decode(b)
		if err == nil && file == nil {
			t.Fatal("nil file without error")
		}
	})
}
