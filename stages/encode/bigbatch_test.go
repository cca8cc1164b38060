package encode

import (
	"math"
	"testing"
)

// TestBigShardMatchesSmallShard checks a convnet-s replica at shard size
// 256 against one at size 16 on the same function: the 256-image shard is
// the 16-image one repeated 16 times, so every BatchNorm sees the same
// batch statistics, the projection is the small one's repeated, and with
// upstream gradient G/16 repeated the objective sum(projection ⊙ G) and
// hence every parameter gradient are mathematically the same. Whatever in
// the compute depends on the shard size (BLAS blocking and parallelism,
// buffer sizes and reuse, accumulation over the batch) must not change
// the result beyond float32 rounding.
//
// Comparing with a float64 reference at size 256 instead would be flaky:
// with ~1.6M BatchNorm outputs per layer, a pre-activation within a few
// 1e-7 of zero (where float32 rounding of the convolution may flip the
// fused ReLU's mask, as it does in PyTorch's float32 too) is likely, and
// one flip moves that channel's β gradient by ~1e-3 relative. Here both
// replicas see bitwise the same pre-activations, so no mask can differ.
func TestBigShardMatchesSmallShard(t *testing.T) {
	const small, copies = 16, 16
	const big = small * copies
	in := Input{C: 1, H: 28, W: 28}
	w := randomWeights(t, Config{}, in, 1)
	x := randomSlice(5, small*in.Len(), 1)
	g := randomSlice(6, small*w.Out(), 1)

	rs := newReplica(t, w, small)
	defer rs.Close()
	fs, ps, err := rs.Forward(x, Train)
	if err != nil {
		t.Fatal(err)
	}
	fs, ps = append([]float32(nil), fs...), append([]float32(nil), ps...)
	if err := rs.Backward(g); err != nil {
		t.Fatal(err)
	}

	xb := make([]float32, 0, big*in.Len())
	gb := make([]float32, 0, big*w.Out())
	for range copies {
		xb = append(xb, x...)
		for _, e := range g {
			gb = append(gb, e/copies)
		}
	}
	rb := newReplica(t, w, big)
	defer rb.Close()
	fb, pb, err := rb.Forward(xb, Train)
	if err != nil {
		t.Fatal(err)
	}
	if err := rb.Backward(gb); err != nil {
		t.Fatal(err)
	}

	// relErr is max|a−b| / max|b|, as PyTorch comparisons report it.
	relErr := func(a, b []float32) float64 {
		var e, m float64
		for i := range b {
			e = max(e, math.Abs(float64(a[i])-float64(b[i])))
			m = max(m, math.Abs(float64(b[i])))
		}
		if m == 0 {
			return e
		}
		return e / m
	}
	// The size-dependent bugs looked for are ≥1e-3; float32 rounding of
	// sums over 16 times as many images is ~1e-6.
	const tol = 1e-4
	for k := range copies {
		if e := relErr(fb[k*len(fs):(k+1)*len(fs)], fs); e > tol {
			t.Errorf("features of copy %d: relative error %.2g", k, e)
		}
		if e := relErr(pb[k*len(ps):(k+1)*len(ps)], ps); e > tol {
			t.Errorf("projection of copy %d: relative error %.2g", k, e)
		}
	}
	for i, p := range rb.Params() {
		q := rs.Params()[i]
		if p.Name != q.Name {
			t.Fatalf("parameter %d: %s at size %d, %s at size %d", i, p.Name, big, q.Name, small)
		}
		e := relErr(p.Grad, q.Grad)
		t.Logf("%s: relative error %.2g", p.Name, e)
		if e > tol {
			t.Errorf("gradient of %s at shard size %d: relative error %.2g against size %d", p.Name, big, e, small)
		}
	}
}
