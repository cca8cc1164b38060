package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
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
		{"header not an object", withHeader(`null`, 0), "not a JSON object"},
		{"size not dtype × shape", withHeader(`{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, 4), "data offsets"},
		{"offsets reversed", withHeader(`{"x":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}}`, 4), "data offsets"},
		{"offsets past the data", withHeader(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 4), "data offsets"},
		{"aliased tensors", withHeader(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 4),
			`tensors "a" [0, 4) and "b" [0, 4) overlap`},
		{"overlapping tensors", withHeader(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"I32","shape":[2],"data_offsets":[4,12]}}`, 12),
			`tensors "a" [0, 8) and "b" [4, 12) overlap`},
		{"tensor inside another", withHeader(`{"big":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"in":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"next":{"dtype":"F32","shape":[1],"data_offsets":[16,20]}}`, 20),
			`tensors "big" [0, 16) and "in" [4, 8) overlap`},
		{"empty tensor inside another", withHeader(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}}`, 8),
			`tensors "a" [0, 8) and "e" [4, 4) overlap`},
		{"hole between tensors", withHeader(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}`, 12),
			"bytes [4, 8) of the data belong to no tensor"},
		{"hole before the first tensor", withHeader(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8),
			"bytes [0, 4) of the data belong to no tensor"},
		{"bytes after the last tensor", withHeader(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 12),
			"bytes [4, 12) of the data belong to no tensor"},
		{"data but no tensors", withHeader(`{"__metadata__":{"a":"b"}}`, 4),
			"bytes [0, 4) of the data belong to no tensor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.b)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Decode = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// The format allows empty tensors to share an offset with each other and
// with the start or end of a neighbour: they hold no bytes.
func TestDecodeEmptyTensorsShareOffsets(t *testing.T) {
	b := withHeader(`{"e0":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"e1":{"dtype":"I64","shape":[2,0],"data_offsets":[0,0]},`+
		`"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"e2":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}}`, 4)
	f, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Names(); !slices.Equal(got, []string{"a", "e0", "e1", "e2"}) {
		t.Errorf("names %v", got)
	}
}

// Read names the file as well as the tensors at fault.
func TestReadNamesFileAndTensors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "model.safetensors")
	b := withHeader(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"alias":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 4)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Read(path)
	if err == nil || !strings.Contains(err.Error(), path+": ") || !strings.Contains(err.Error(), `"alias"`) || !strings.Contains(err.Error(), `"w"`) {
		t.Errorf("Read = %v, want an error naming %s, \"alias\" and \"w\"", err, path)
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
	f.Add(withHeader(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 4))
	f.Add(withHeader(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}}`, 8))
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Decode(b)
		if err == nil && file == nil {
			t.Fatal("nil file without error")
		}
		if err != nil {
			return
		}
		// A file that decodes has every byte of its data in exactly one
		// tensor, and each tensor holds as many values as its shape says.
		n := binary.LittleEndian.Uint64(b)
		var raw map[string]struct {
			DType   string   `json:"dtype"`
			Offsets [2]int64 `json:"data_offsets"`
		}
		if json.Unmarshal(b[8:8+n], &raw) != nil {
			t.Fatal("Decode accepted a header that does not parse")
		}
		var covered int64
		for name, e := range raw {
			if name != "__metadata__" {
				covered += e.Offsets[1] - e.Offsets[0]
			}
		}
		if covered != int64(len(b))-8-int64(n) {
			t.Errorf("tensors cover %d bytes of %d", covered, int64(len(b))-8-int64(n))
		}
		for name, tt := range file.Tensors {
			if max(len(tt.F32), len(tt.I64)) != tt.Len() {
				t.Errorf("%s: %d values for shape %v", name, max(len(tt.F32), len(tt.I64)), tt.Shape)
			}
		}
	})
}
