package vec

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// kernels runs f with each implementation this CPU can run.
func kernels(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	old := useAVX512
	defer func() { useAVX512 = old }()
	useAVX512 = false
	t.Run("go", f)
	if hasAVX512 {
		useAVX512 = true
		t.Run("avx512", f)
	}
}

// lengths are the slice lengths under test: every length up to 70 (the
// tails of a vector and of a group of four), block boundaries and large.
func lengths() []int {
	var ns []int
	for n := range 71 {
		ns = append(ns, n)
	}
	return append(ns, 127, 128, 129, 784, 1023, 1024, 1025, 2047, 2048, 2049, 3000, 100003)
}

// data returns n values at an offset of off floats into a fresh slice (so
// unaligned when off%16 ≠ 0), normal with mean mu.
func data(rng *rand.Rand, n, off int, mu float64) []float32 {
	d := make([]float32, n+off+1)[off : off+n]
	for i := range d {
		d[i] = float32(mu + rng.NormFloat64())
	}
	return d
}

// special are values the elementwise functions must treat as Go does.
var special = []float32{
	0, float32(math.Copysign(0, -1)), 1e-40, -1e-40, 1, -1, 3.5, -2.25,
	float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)),
	math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32,
}

func same(a, b float32) bool {
	return math.Float32bits(a) == math.Float32bits(b) || (a != a && b != b)
}

func same64(a, b float64) bool {
	return math.Float64bits(a) == math.Float64bits(b) || (a != a && b != b)
}

// near reports whether got is within tol·scale of want.
func near(got, want, scale, tol float64) bool {
	return math.Abs(got-want) <= tol*(scale+1e-30)
}

func TestReductions(t *testing.T) {
	kernels(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		for _, n := range lengths() {
			for _, off := range []int{0, 1, 3} {
				const mu, m = 0.3, 0.25
				x, g, y := data(rng, n, off, mu), data(rng, n, off+2, 0), data(rng, n, off+5, 0)
				var s, sa, ss, d, da, sg, sga, dr, dra, sr, sra float64
				for i := range x {
					xi, gi := float64(x[i]), float64(g[i])
					s += xi
					sa += math.Abs(xi)
					ss += (xi - m) * (xi - m)
					d += gi * (xi - m)
					da += math.Abs(gi * (xi - m))
					sg += gi
					sga += math.Abs(gi)
					if y[i] > 0 {
						dr += gi * (xi - m)
						dra += math.Abs(gi * (xi - m))
						sr += gi
						sra += math.Abs(gi)
					}
				}
				// Each float32 partial sum holds at most 16 values, each
				// term rounded once or twice.
				const tol = 20 * 0x1p-24
				gd, gs := DotDev(g, x, m)
				rd, rs := DotDevReLU(y, g, x, m)
				for _, c := range []struct {
					name             string
					got, want, scale float64
				}{
					{"Sum", Sum(x), s, sa}, {"SumSqDev", SumSqDev(x, m), ss, ss},
					{"DotDev.dot", gd, d, da}, {"DotDev.sum", gs, sg, sga},
					{"DotDevReLU.dot", rd, dr, dra}, {"DotDevReLU.sum", rs, sr, sra},
				} {
					if !near(c.got, c.want, c.scale, tol) {
						t.Errorf("%s n=%d off=%d: got %v, want %v", c.name, n, off, c.got, c.want)
					}
				}
				// The Go code and the assembly give the same bits.
				want := []float64{sumGo(x), sumSqDevGo(x, m)}
				a, b := dotDevGo(nil, g, x, m)
				c, e := dotDevGo(y, g, x, m)
				want = append(want, a, b, c, e)
				got := []float64{Sum(x), SumSqDev(x, m), gd, gs, rd, rs}
				for i := range got {
					if !same64(got[i], want[i]) {
						t.Errorf("reduction %d n=%d off=%d: got %v, Go code %v", i, n, off, got[i], want[i])
					}
				}
			}
		}
	})
}

// TestReductionsDeterministic checks that the sums depend on the values
// only, not on where they lie in memory.
func TestReductionsDeterministic(t *testing.T) {
	kernels(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(5, 6))
		for _, n := range []int{17, 784, 5000} {
			x0, g0, y0 := data(rng, n, 0, 1), data(rng, n, 0, 0), data(rng, n, 0, 0)
			s0, q0 := Sum(x0), SumSqDev(x0, 1)
			d0, t0 := DotDevReLU(y0, g0, x0, 1)
			for off := 1; off < 16; off++ {
				x, g, y := make([]float32, n+off)[off:], make([]float32, n+off)[off:], make([]float32, n+off)[off:]
				copy(x, x0)
				copy(g, g0)
				copy(y, y0)
				d, s := DotDevReLU(y, g, x, 1)
				if Sum(x) != s0 || SumSqDev(x, 1) != q0 || d != d0 || s != t0 {
					t.Fatalf("n=%d off=%d: sums differ", n, off)
				}
			}
		}
	})
}

func TestReductionsSpecial(t *testing.T) {
	kernels(t, func(t *testing.T) {
		inf := float32(math.Inf(1))
		nan := float32(math.NaN())
		for _, c := range []struct {
			x    []float32
			want float64
		}{
			{[]float32{1, inf, 2}, math.Inf(1)},
			{[]float32{1, inf, -inf}, math.NaN()},
			{[]float32{nan, 1}, math.NaN()},
			{[]float32{float32(math.Copysign(0, -1))}, 0},
		} {
			if got := Sum(c.x); !same64(got, c.want) {
				t.Errorf("Sum(%v) = %v, want %v", c.x, got, c.want)
			}
		}
		// Masked-out lanes must not turn an infinite mean into NaN.
		if got := SumSqDev([]float32{0}, inf); got != math.Inf(1) {
			t.Errorf("SumSqDev([0], +Inf) = %v, want +Inf", got)
		}
		if d, s := DotDev([]float32{1}, []float32{0}, inf); d != math.Inf(-1) || s != 1 {
			t.Errorf("DotDev([1], [0], +Inf) = %v, %v, want -Inf, 1", d, s)
		}
		y := []float32{1, 0, -1, nan, float32(math.Copysign(0, -1))}
		g := []float32{2, 3, 4, 5, 6}
		if d, s := DotDevReLU(y, g, []float32{1, 1, 1, 1, 1}, 0); d != 2 || s != 2 {
			t.Errorf("DotDevReLU = %v, %v, want 2, 2", d, s)
		}
	})
}

// elementwise returns k inputs of n values for the elementwise tests:
// random values and, for small n, many special ones.
func elementwise(rng *rand.Rand, n, off, k int) [][]float32 {
	in := make([][]float32, k)
	for j := range in {
		in[j] = data(rng, n, off+j, 0)
		if n < 200 {
			for i := range in[j] {
				if rng.IntN(3) == 0 {
					in[j][i] = special[rng.IntN(len(special))]
				}
			}
		}
	}
	return in
}

func TestElementwise(t *testing.T) {
	type fn struct {
		name string
		k    int // inputs
		run  func(out []float32, in [][]float32)
		want func(in []float32) float32 // from the i-th value of each input
	}
	const a, b, mb, m, k = 1.5, -0.25, 0.125, 0.3, -0.7
	relu := func(v float32) float32 {
		if v != v || v > 0 {
			return v
		}
		return 0
	}
	mask := func(y, g float32) float32 {
		if y > 0 {
			return g
		}
		return 0
	}
	// The references compute in float64 and round to float32 after each
	// operation, as the docs say (exact: float64 holds a float32 product
	// or sum before its rounding).
	r := func(v float64) float64 { return float64(float32(v)) }
	bn := func(g, x float32) float32 {
		return float32(float64(float32(a)) * r(r(float64(g)-float64(float32(mb)))-r(r(float64(x)-float64(float32(m)))*float64(float32(k)))))
	}
	fns := []fn{
		{"ScaleShift", 1, func(o []float32, in [][]float32) { ScaleShift(o, in[0], a, b) },
			func(v []float32) float32 { return float32(r(float64(v[0])*a) + b) }},
		{"ScaleShiftReLU", 1, func(o []float32, in [][]float32) { ScaleShiftReLU(o, in[0], a, b) },
			func(v []float32) float32 { return relu(float32(r(float64(v[0])*a) + b)) }},
		{"ReluMask", 2, func(o []float32, in [][]float32) { ReluMask(o, in[0], in[1]) },
			func(v []float32) float32 { return mask(v[0], v[1]) }},
		{"BNGradInput", 2, func(o []float32, in [][]float32) { BNGradInput(o, in[0], in[1], a, mb, m, k) },
			func(v []float32) float32 { return bn(v[0], v[1]) }},
		{"BNGradInputReLU", 3, func(o []float32, in [][]float32) { BNGradInputReLU(o, in[0], in[1], in[2], a, mb, m, k) },
			func(v []float32) float32 { return bn(mask(v[0], v[1]), v[2]) }},
		{"Add", 2, func(o []float32, in [][]float32) { copy(o, in[0]); Add(o, in[1]) },
			func(v []float32) float32 { return float32(float64(v[0]) + float64(v[1])) }},
	}
	kernels(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 4))
		for _, f := range fns {
			for _, n := range lengths() {
				for _, off := range []int{0, 1, 7} {
					in := elementwise(rng, n, off, f.k)
					// out has a guard value on each side.
					buf := make([]float32, n+off+2)
					for i := range buf {
						buf[i] = 42
					}
					out := buf[off+1 : off+1+n]
					f.run(out, in)
					v := make([]float32, f.k)
					for i := range out {
						for j := range v {
							v[j] = in[j][i]
						}
						if want := f.want(v); !same(out[i], want) {
							t.Fatalf("%s n=%d off=%d: [%d] of %v = %v, want %v", f.name, n, off, i, v, out[i], want)
						}
					}
					if buf[off] != 42 || buf[off+1+n] != 42 {
						t.Fatalf("%s n=%d off=%d: wrote outside its output", f.name, n, off)
					}
				}
			}
		}
	})
}

// TestReLUZero checks the sign of ReLU's zero: max(−0, 0) = +0 in Go.
func TestReLUZero(t *testing.T) {
	kernels(t, func(t *testing.T) {
		x := []float32{float32(math.Copysign(0, -1)), -1, 0}
		y := make([]float32, 3)
		ScaleShiftReLU(y, x, 1, 0)
		for i, e := range y {
			if math.Float32bits(e) != 0 {
				t.Errorf("ReLU(%v) = %v (bits %#x), want +0", x[i], e, math.Float32bits(e))
			}
		}
	})
}

func TestMaxPool2(t *testing.T) {
	kernels(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(7, 8))
		for _, sz := range [][3]int{{1, 2, 2}, {3, 4, 4}, {2, 5, 7}, {4, 28, 28}, {3, 14, 14}, {2, 3, 2}, {2, 2, 35}, {1, 9, 33}, {2, 1, 5}, {2, 6, 1}, {5, 7, 7}} {
			planes, h, w := sz[0], sz[1], sz[2]
			oh, ow := h/2, w/2
			for _, base := range []int32{0, 1000} {
				x := make([]float32, planes*h*w+1)[1:]
				for i := range x {
					x[i] = float32(rng.IntN(4)) // many ties
					if rng.IntN(10) == 0 {
						x[i] = special[rng.IntN(len(special))]
					}
				}
				y, idx := make([]float32, planes*oh*ow), make([]int32, planes*oh*ow)
				MaxPool2(y, idx, x, planes, h, w, base)
				wy, widx := make([]float32, len(y)), make([]int32, len(y))
				maxPool2Go(wy, widx, x, planes, h, w, base)
				o := 0
				for p := range planes {
					for oy := range oh {
						for ox := range ow {
							first := p*h*w + 2*oy*w + 2*ox
							best := first
							for _, i := range []int{first, first + 1, first + w, first + w + 1} {
								if x[i] > x[best] || (x[i] != x[i] && x[best] == x[best]) {
									best = i
								}
							}
							want := x[best]
							if !same(y[o], want) && !(y[o] == 0 && want == 0) {
								t.Fatalf("%v: y[%d] = %v, want %v", sz, o, y[o], want)
							}
							if want == want && int(idx[o]-base) != best {
								t.Fatalf("%v: idx[%d] = %d, want %d", sz, o, idx[o]-base, best)
							}
							if !same(y[o], wy[o]) || idx[o] != widx[o] {
								t.Fatalf("%v: output %d = %v at %d, Go code %v at %d", sz, o, y[o], idx[o], wy[o], widx[o])
							}
							o++
						}
					}
				}
				// The gradient: +0 + dy at idx, +0 elsewhere.
				dy := data(rng, len(y), 3, 0)
				if len(dy) > 0 {
					dy[0] = float32(math.Copysign(0, -1))
				}
				dx := make([]float32, len(x)+2)
				for i := range dx {
					dx[i] = 42
				}
				MaxPool2Grad(dx[1:len(x)+1], dy, idx, planes, h, w, base)
				want := make([]float32, len(x))
				for o, i := range idx {
					want[i-base] += dy[o]
				}
				for i := range want {
					if math.Float32bits(dx[i+1]) != math.Float32bits(want[i]) {
						t.Fatalf("%v: dx[%d] = %v, want %v", sz, i, dx[i+1], want[i])
					}
				}
				if dx[0] != 42 || dx[len(x)+1] != 42 {
					t.Fatalf("%v: wrote outside dx", sz)
				}
			}
		}
	})
}

func ExampleScaleShiftReLU() {
	x := []float32{-2, -0.5, 0, 1, 2}
	y := make([]float32, len(x))
	ScaleShiftReLU(y, x, 2, 1)
	fmt.Println(y)
	// Output: [0 0 1 3 5]
}

func ExampleSum() {
	fmt.Println(Sum([]float32{1, 2, 3, 4.5}))
	// Output: 10.5
}
