package loss_test

import (
	"math"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/contrastream/contrastream/sinks/safetensors"
	"github.com/contrastream/contrastream/stages/loss"
)

// The reference files (copied from ../shared/testvectors) were computed by
// PyTorch in float64 and stored as float32; the issue asks for 1e-5
// relative to the largest magnitude of each reference tensor.
const vectorTol = 1e-5

func readVector(t *testing.T, name string) *safetensors.File {
	t.Helper()
	f, err := safetensors.Read(filepath.Join("testdata", name+".safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func f32(t *testing.T, f *safetensors.File, name string, shape ...int) []float32 {
	t.Helper()
	v, err := f.F32(name, shape...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// temperature reads the file's metadata temperature.
func temperature(t *testing.T, f *safetensors.File) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(f.Metadata["temperature"], 64)
	if err != nil {
		t.Fatalf("metadata temperature: %v", err)
	}
	return v
}

// relErr is max|got − want| / max|want|.
func relErr(got, want []float32) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var d, m float64
	for i := range want {
		d = max(d, math.Abs(float64(got[i])-float64(want[i])))
		m = max(m, math.Abs(float64(want[i])))
	}
	return d / m
}

func checkErr(t *testing.T, what string, e float64) {
	t.Helper()
	t.Logf("%s: max relative error %.3g", what, e)
	if !(e <= vectorTol) {
		t.Errorf("%s: relative error %.3g over %g", what, e, vectorTol)
	}
}

func TestVectorInfoNCE(t *testing.T) {
	f := readVector(t, "infonce")
	const n, d, kq = 8, 16, 32
	in := loss.Inputs{
		Z:     [2][]float32{f32(t, f, "q", n, d), f32(t, f, "k", n, d)},
		N:     n,
		D:     d,
		Queue: f32(t, f, "queue", kq, d),
		K:     kq,
	}
	l, err := loss.NewInfoNCE(loss.InfoNCEConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if tf := temperature(t, f); l.Temperature() != tf {
		t.Fatalf("default temperature %g, file's %g", l.Temperature(), tf)
	}
	var out loss.Outputs
	if err := l.Compute(in, &out); err != nil {
		t.Fatal(err)
	}
	checkErr(t, "infonce loss", relErr([]float32{float32(out.Loss)}, f32(t, f, "loss", 1)))
	checkErr(t, "infonce grad_q", relErr(out.Grad[0], f32(t, f, "grad_q", n, d)))
	if len(out.Grad[1]) != 0 {
		t.Errorf("len(Grad[1]) = %d, want 0 (no gradient for the key)", len(out.Grad[1]))
	}
	if out.Anchors != n {
		t.Errorf("Anchors = %d, want %d", out.Anchors, n)
	}
}

func TestVectorNTXent(t *testing.T) {
	f := readVector(t, "ntxent")
	const n, d = 8, 16
	l, err := loss.NewNTXent(loss.NTXentConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if tf := temperature(t, f); l.Temperature() != tf {
		t.Fatalf("default temperature %g, file's %g", l.Temperature(), tf)
	}
	var out loss.Outputs
	in := loss.Inputs{Z: [2][]float32{f32(t, f, "z1", n, d), f32(t, f, "z2", n, d)}, N: n, D: d}
	if err := l.Compute(in, &out); err != nil {
		t.Fatal(err)
	}
	checkErr(t, "ntxent loss", relErr([]float32{float32(out.Loss)}, f32(t, f, "loss", 1)))
	checkErr(t, "ntxent grad_z1", relErr(out.Grad[0], f32(t, f, "grad_z1", n, d)))
	checkErr(t, "ntxent grad_z2", relErr(out.Grad[1], f32(t, f, "grad_z2", n, d)))
	if out.Anchors != 2*n {
		t.Errorf("Anchors = %d, want %d", out.Anchors, 2*n)
	}
}

func TestVectorSupCon(t *testing.T) {
	f := readVector(t, "supcon")
	const n, d = 8, 16
	l, err := loss.NewSupCon(loss.SupConConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if tf := temperature(t, f); l.Temperature() != tf {
		t.Fatalf("default temperature %g, file's %g", l.Temperature(), tf)
	}
	labels := f.Tensors["labels"].I64
	if len(labels) != n {
		t.Fatalf("%d labels, want %d", len(labels), n)
	}
	z := loss.SplitViews([2][]float32{}, f32(t, f, "features", n, 2, d), n, d)
	var out loss.Outputs
	if err := l.Compute(loss.Inputs{Z: z, N: n, D: d, Labels: labels}, &out); err != nil {
		t.Fatal(err)
	}
	checkErr(t, "supcon loss", relErr([]float32{float32(out.Loss)}, f32(t, f, "loss", 1)))
	grad := loss.JoinViews(nil, out.Grad, n, d)
	checkErr(t, "supcon grad_features", relErr(grad, f32(t, f, "grad_features", n, 2, d)))
	if out.Anchors != 2*n {
		t.Errorf("Anchors = %d, want %d", out.Anchors, 2*n)
	}
}
