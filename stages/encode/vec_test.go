package encode

import (
	"math"
	"math/rand/v2"
	"testing"

	"gorgonia.org/tensor"
)

// TestIm2ColMatchesDefinition checks im2col and col2im (whose stride-1
// "same" path copies and adds whole runs) against their definitions.
func TestIm2ColMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for _, g := range []struct{ c, h, w, k, s, p int }{
		{2, 5, 6, 3, 1, 1}, {1, 28, 28, 3, 1, 1}, {3, 7, 7, 3, 1, 1}, {2, 6, 5, 5, 1, 2},
		{1, 4, 4, 1, 1, 0}, {2, 6, 6, 3, 1, 2}, {1, 3, 3, 3, 1, 3}, {3, 7, 5, 3, 2, 1},
		{1, 2, 2, 3, 1, 1}, {1, 1, 1, 3, 1, 1}, {2, 9, 4, 7, 1, 3}, {1, 6, 6, 3, 1, 0},
	} {
		geo, err := newConvGeom(1, g.c, g.h, g.w, 1, g.k, g.s, g.p)
		if err != nil {
			t.Fatal(err)
		}
		x := make([]float32, g.c*g.h*g.w)
		randn(rng, x)
		col := make([]float32, geo.rows()*geo.cols())
		for i := range col {
			col[i] = 42
		}
		geo.im2col(x, col)
		c := make([]float32, len(col))
		randn(rng, c)
		dx := make([]float32, len(x))
		want := make([]float32, len(x))
		for i := range want {
			dx[i] = float32(i)
			want[i] = float32(i)
		}
		r := 0
		for ch := 0; ch < g.c; ch++ {
			for ky := 0; ky < g.k; ky++ {
				for kx := 0; kx < g.k; kx++ {
					for oy := 0; oy < geo.oh; oy++ {
						for ox := 0; ox < geo.ow; ox++ {
							iy, ix := oy*g.s+ky-g.p, ox*g.s+kx-g.p
							q := r*geo.cols() + oy*geo.ow + ox
							v := float32(0)
							if iy >= 0 && iy < g.h && ix >= 0 && ix < g.w {
								v = x[(ch*g.h+iy)*g.w+ix]
								want[(ch*g.h+iy)*g.w+ix] += c[q]
							}
							if math.Float32bits(col[q]) != math.Float32bits(v) {
								t.Fatalf("%+v: im2col[%d] = %v, want %v", g, q, col[q], v)
							}
						}
					}
					r++
				}
			}
		}
		// col2im adds in the definition's order for each dx value (the
		// rows of col in order), so the sums agree exactly.
		geo.col2im(c, dx)
		for i := range want {
			if dx[i] != want[i] {
				t.Fatalf("%+v: col2im[%d] = %v, want %v", g, i, dx[i], want[i])
			}
		}
	}
}

// TestMaxPool2Grad checks the 2×2 max-pool's gradient, which writes each
// window whole, against a scatter into zeros, odd sides included.
func TestMaxPool2Grad(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 3))
	for _, sz := range [][2]int{{4, 4}, {5, 7}, {28, 28}, {3, 2}, {7, 7}} {
		h, w := sz[0], sz[1]
		op, err := newMaxPoolOp("p", nil, 3, 2, h, w, 2)
		if err != nil {
			t.Fatal(err)
		}
		x := make([]float32, 3*2*h*w)
		randn(rng, x)
		xt := tensor.New(tensor.WithShape(3, 2, h, w), tensor.WithBacking(x))
		if _, err := op.Do(xt); err != nil {
			t.Fatal(err)
		}
		dy := make([]float32, len(op.idx))
		randn(rng, dy)
		gop := &maxPoolGradOp{opBase: newBase("maxpool.dx", "p"), fwd: op}
		// Twice: the second run writes over the first's output.
		for range 2 {
			out, err := gop.Do(xt, tensor.New(tensor.WithShape(3, 2, h/2, w/2), tensor.WithBacking(dy)))
			if err != nil {
				t.Fatal(err)
			}
			dx := out.(*tensor.Dense).Float32s()
			want := make([]float32, len(x))
			for o, i := range op.idx {
				want[i] += dy[o]
			}
			for i := range want {
				if dx[i] != want[i] {
					t.Fatalf("%d×%d: dx[%d] = %v, want %v", h, w, i, dx[i], want[i])
				}
			}
			randn(rng, dy)
		}
	}
}

// TestBatchNormStats checks the batch statistics, summed per image and
// channel then combined, against float64 ones, on data with a large mean
// (where Σx² − (Σx)²/M would cancel).
func TestBatchNormStats(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 5))
	for _, sz := range [][4]int{{2, 3, 5, 5}, {8, 4, 28, 28}, {5, 2, 7, 7}, {3, 1, 1, 2}} {
		n, c, h, w := sz[0], sz[1], sz[2], sz[3]
		rm, rv := make([]float32, c), make([]float32, c)
		op := newBatchNormOp("bn", nil, n, c, h, w, true, rm, rv)
		x := make([]float32, n*c*h*w)
		for i := range x {
			x[i] = float32(1000 + 0.5*rng.NormFloat64())
		}
		gamma, beta := make([]float32, c), make([]float32, c)
		for i := range gamma {
			gamma[i] = 1
		}
		_, err := op.Do(tensor.New(tensor.WithShape(n, c, h, w), tensor.WithBacking(x)),
			tensor.New(tensor.WithShape(c), tensor.WithBacking(gamma)), tensor.New(tensor.WithShape(c), tensor.WithBacking(beta)))
		if err != nil {
			t.Fatal(err)
		}
		for ch := 0; ch < c; ch++ {
			var s float64
			m := n * h * w
			for i := 0; i < n; i++ {
				for _, e := range x[(i*c+ch)*h*w : (i*c+ch+1)*h*w] {
					s += float64(e)
				}
			}
			mean := s / float64(m)
			var ss float64
			for i := 0; i < n; i++ {
				for _, e := range x[(i*c+ch)*h*w : (i*c+ch+1)*h*w] {
					ss += (float64(e) - mean) * (float64(e) - mean)
				}
			}
			v := ss / float64(m)
			if math.Abs(float64(op.mean[ch])-mean) > 1e-6*mean {
				t.Errorf("%v channel %d: mean %v, want %v", sz, ch, op.mean[ch], mean)
			}
			// x−m is exact-ish, each square rounded: relative 1e-5 of the
			// variance is far below the cancellation of the one-pass form.
			wantInv := 1 / math.Sqrt(v+BNEps)
			if math.Abs(float64(op.invStd[ch])-wantInv) > 1e-4*wantInv {
				t.Errorf("%v channel %d: 1/σ %v, want %v (var %v)", sz, ch, op.invStd[ch], wantInv, v)
			}
		}
	}
}
