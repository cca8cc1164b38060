package encode

import (
	"math"
	"math/rand/v2"
	"testing"

	"gorgonia.org/tensor"
)

// TestMaxPool2MatchesScan checks the branch-free 2×2 max-pool against a
// plain scan of each window in row-major order (first maximum wins), with
// ties, odd sides and NaN.
func TestMaxPool2MatchesScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, sz := range [][2]int{{4, 4}, {5, 7}, {28, 28}, {3, 2}} {
		h, w := sz[0], sz[1]
		op, err := newMaxPoolOp("p", nil, 3, 2, h, w, 2)
		if err != nil {
			t.Fatal(err)
		}
		x := make([]float32, 3*2*h*w)
		for i := range x {
			x[i] = float32(rng.IntN(4)) // many ties
		}
		x[5] = float32(math.NaN())
		out, err := op.Do(tensor.New(tensor.WithShape(3, 2, h, w), tensor.WithBacking(x)))
		if err != nil {
			t.Fatal(err)
		}
		y := out.(*tensor.Dense).Float32s()
		o := 0
		for p := 0; p < 3*2; p++ {
			for oy := 0; oy < h/2; oy++ {
				for ox := 0; ox < w/2; ox++ {
					best := p*h*w + 2*oy*w + 2*ox
					for _, i := range []int{best, best + 1, best + w, best + w + 1} {
						if x[i] > x[best] || (x[i] != x[i] && x[best] == x[best]) {
							best = i
						}
					}
					want := x[best]
					if got := y[o]; got != want && !(got != got && want != want) {
						t.Fatalf("%d×%d: output %d = %v, want %v", h, w, o, got, want)
					}
					if want == want && int(op.idx[o]) != best {
						t.Fatalf("%d×%d: output %d from %d, want %d", h, w, o, op.idx[o], best)
					}
					o++
				}
			}
		}
	}
}

// TestReluMask checks reluMask against dy·[y > 0] for zeros of both signs,
// NaN, infinities and ordinary values.
func TestReluMask(t *testing.T) {
	nan := float32(math.NaN())
	y := []float32{0, float32(math.Copysign(0, -1)), 1e-40, 1, -1, nan, -nan, float32(math.Inf(1)), float32(math.Inf(-1)), 3}
	dy := make([]float32, len(y))
	for i := range dy {
		dy[i] = float32(i + 1)
	}
	m := make([]float32, len(y))
	reluMask(m, y, dy)
	for i, e := range y {
		want := float32(0)
		if e > 0 {
			want = dy[i]
		}
		if m[i] != want {
			t.Errorf("y = %v: got %v, want %v", e, m[i], want)
		}
	}
}

// TestSums checks the blocked sums against float64 ones.
func TestSums(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 3, 4, 7, 784, 1024, 1025, 5000} {
		x, g := make([]float32, n), make([]float32, n)
		var s, ss, d, sg float64
		const mean = 0.25
		for i := range x {
			x[i], g[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
			s += float64(x[i])
			ss += (float64(x[i]) - mean) * (float64(x[i]) - mean)
			d += float64(g[i]) * (float64(x[i]) - mean)
			sg += float64(g[i])
		}
		gd, gsg := dotDev(g, x, mean)
		for _, c := range [][3]float64{{sum(x), s, 0}, {sumSqDev(x, mean), ss, 1}, {gd, d, 2}, {gsg, sg, 3}} {
			if math.Abs(c[0]-c[1]) > 1e-5*(1+math.Abs(c[1])) {
				t.Errorf("n %d, sum %v: got %v, want %v", n, c[2], c[0], c[1])
			}
		}
	}
}
