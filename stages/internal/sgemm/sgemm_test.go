package sgemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/contrastream/contrastream/pipeline"
)

// useKernel makes k the active kernel until the test ends.
func useKernel(t testing.TB, k kernel) {
	saved := active
	active = k
	t.Cleanup(func() { active = saved })
}

// operands returns random a, b, c for the problem, with leading dimensions
// padded by pad and c filled with cFill when it is not zero (NaN, say).
type operands struct {
	a, b, c       []float32
	lda, ldb, ldc int
}

func newOperands(rng *rand.Rand, transA, transB bool, m, n, k, pad int) operands {
	ra, ca := m, k
	if transA {
		ra, ca = k, m
	}
	rb, cb := k, n
	if transB {
		rb, cb = n, k
	}
	o := operands{lda: max(1, ca+pad), ldb: max(1, cb+pad), ldc: max(1, n+pad)}
	o.a = randSlice(rng, max(0, (ra-1)*o.lda+ca))
	o.b = randSlice(rng, max(0, (rb-1)*o.ldb+cb))
	o.c = randSlice(rng, max(0, (m-1)*o.ldc+n))
	return o
}

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64())
	}
	return s
}

// refElem returns element (i, j) of alpha·op(a)·op(b) + beta·c0 summed in
// float64, and the sum of the magnitudes of its terms (the error scale).
func refElem(transA, transB bool, i, j, k int, alpha float32, o operands, beta float32, c0 []float32) (v, mag float64) {
	var s, sa float64
	for p := range k {
		ai := i*o.lda + p
		if transA {
			ai = p*o.lda + i
		}
		bi := p*o.ldb + j
		if transB {
			bi = j*o.ldb + p
		}
		x := float64(o.a[ai]) * float64(o.b[bi])
		s += x
		sa += math.Abs(x)
	}
	v = float64(alpha) * s
	mag = math.Abs(float64(alpha)) * sa
	if beta != 0 {
		cv := float64(beta) * float64(c0[i*o.ldc+j])
		v += cv
		mag += math.Abs(cv)
	}
	return v, mag
}

type gemmCase struct {
	transA, transB bool
	m, n, k, pad   int
	alpha, beta    float32
}

func (tc gemmCase) String() string {
	return fmt.Sprintf("tA=%v,tB=%v,m=%d,n=%d,k=%d,pad=%d,alpha=%g,beta=%g", tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.pad, tc.alpha, tc.beta)
}

// checkCase runs Gemm on a random instance of tc and compares it with the
// float64 reference, on every element or on samples random ones when
// samples > 0. c starts NaN when beta == 0.
func checkCase(t *testing.T, rng *rand.Rand, tc gemmCase, samples int) {
	t.Helper()
	o := newOperands(rng, tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.pad)
	if tc.beta == 0 {
		for i := range o.c {
			o.c[i] = float32(math.NaN())
		}
	}
	c0 := append([]float32(nil), o.c...)
	Gemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, o.a, o.lda, o.b, o.ldb, tc.beta, o.c, o.ldc)
	tol := 1e-5 * math.Sqrt(float64(tc.k)+1)
	bad := 0
	checkElem := func(i, j int) {
		want, mag := refElem(tc.transA, tc.transB, i, j, tc.k, tc.alpha, o, tc.beta, c0)
		got := float64(o.c[i*o.ldc+j])
		if math.IsNaN(got) || math.Abs(got-want) > tol*mag+1e-30 {
			if bad++; bad <= 5 {
				t.Errorf("%v: c[%d][%d] = %g, want %g (tolerance %g)", tc, i, j, got, want, tol*mag)
			}
		}
	}
	if samples > 0 {
		for range samples {
			checkElem(rng.IntN(tc.m), rng.IntN(tc.n))
		}
	} else {
		for i := range tc.m {
			for j := range tc.n {
				checkElem(i, j)
			}
		}
	}
	// The padding of c is untouched.
	for i := range tc.m - 1 {
		for j := tc.n; j < o.ldc; j++ {
			if x, y := o.c[i*o.ldc+j], c0[i*o.ldc+j]; x != y && !(x != x && y != y) {
				t.Fatalf("%v: padding c[%d][%d] changed from %g to %g", tc, i, j, y, x)
			}
		}
	}
}

func TestGemm(t *testing.T) {
	sizes := []int{1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 31, 33, 47, 48, 49, 63, 64, 65, 70}
	scalars := [][2]float32{{1, 0}, {1, 1}, {-0.5, 0}, {2, 1}, {0.75, -1.5}}
	for _, kern := range kernels() {
		t.Run(kern.name, func(t *testing.T) {
			useKernel(t, kern)
			rng := rand.New(rand.NewPCG(1, 2))
			for _, tA := range []bool{false, true} {
				for _, tB := range []bool{false, true} {
					for range 60 {
						s := scalars[rng.IntN(len(scalars))]
						tc := gemmCase{tA, tB, sizes[rng.IntN(len(sizes))], sizes[rng.IntN(len(sizes))],
							sizes[rng.IntN(len(sizes))], rng.IntN(3) * 5, s[0], s[1]}
						checkCase(t, rng, tc, 0)
					}
				}
			}
		})
	}
}

// TestGemmBlocks crosses the cache blocks: k beyond kc, n beyond nc and m
// beyond mc, each with a ragged last block.
func TestGemmBlocks(t *testing.T) {
	for _, kern := range kernels() {
		t.Run(kern.name, func(t *testing.T) {
			useKernel(t, kern)
			rng := rand.New(rand.NewPCG(3, 4))
			for _, tc := range []gemmCase{
				{false, false, 19, 23, 2*kern.kc + 37, 1, 1, 0},
				{true, true, 21, 17, kern.kc + 1, 0, 1, 0.5},
				{false, true, 9, kern.nc + kern.nr + 5, 40, 3, 1, 1},
				{true, false, kern.mc + kern.mr + 3, 50, 30, 0, -1, 0},
				{false, false, kern.mc + 1, kern.nc + 1, kern.kc + 1, 2, 1.5, 1},
			} {
				checkCase(t, rng, tc, 3000)
			}
		})
	}
}

// TestGemmConvShapes checks the convolution shapes of a batch of 256 on
// sampled elements.
func TestGemmConvShapes(t *testing.T) {
	if testing.Short() {
		t.Skip("large shapes")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for _, s := range convShapes {
		t.Run(s.name, func(t *testing.T) {
			checkCase(t, rng, gemmCase{s.transA, s.transB, s.m, s.n, s.k, 0, 1, 0}, 2000)
			checkCase(t, rng, gemmCase{s.transA, s.transB, s.m, s.n, s.k, 0, 1, 1}, 2000)
		})
	}
}

func TestGemmSpecial(t *testing.T) {
	nan := float32(math.NaN())
	t.Run("k=0", func(t *testing.T) {
		c := []float32{1, 2, nan, 4}
		Gemm(false, false, 2, 2, 0, 1, nil, 1, nil, 2, 0, c, 2)
		if c[0] != 0 || c[1] != 0 || c[2] != 0 || c[3] != 0 {
			t.Errorf("beta = 0: c = %v, want zeros", c)
		}
		c = []float32{1, 2, 3, 4}
		Gemm(true, true, 2, 2, 0, 1, nil, 2, nil, 1, 2, c, 2)
		if c[0] != 2 || c[3] != 8 {
			t.Errorf("beta = 2: c = %v, want 2·c", c)
		}
	})
	t.Run("alpha=0", func(t *testing.T) {
		a := []float32{nan, 1}
		c := []float32{3}
		Gemm(false, false, 1, 1, 2, 0, a, 2, []float32{1, 1}, 1, 0.5, c, 1)
		if c[0] != 1.5 {
			t.Errorf("c = %v, want 1.5", c[0])
		}
	})
	t.Run("empty", func(t *testing.T) {
		Gemm(false, false, 0, 5, 3, 1, nil, 3, make([]float32, 15), 5, 0, nil, 5)
		Gemm(false, false, 5, 0, 3, 1, make([]float32, 15), 3, nil, 1, 0, nil, 1)
	})
}

func TestGemmPanics(t *testing.T) {
	a, b, c := make([]float32, 6), make([]float32, 6), make([]float32, 4)
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"m<0", func() { Gemm(false, false, -1, 2, 3, 1, a, 3, b, 2, 0, c, 2) }},
		{"lda", func() { Gemm(false, false, 2, 2, 3, 1, a, 2, b, 2, 0, c, 2) }},
		{"ldb", func() { Gemm(false, true, 2, 2, 3, 1, a, 3, b, 2, 0, c, 2) }},
		{"ldc", func() { Gemm(false, false, 2, 2, 3, 1, a, 3, b, 2, 0, c, 1) }},
		{"len a", func() { Gemm(false, false, 2, 2, 3, 1, a[:5], 3, b, 2, 0, c, 2) }},
		{"len b", func() { Gemm(false, false, 2, 2, 3, 1, a, 3, b[:5], 2, 0, c, 2) }},
		{"len c", func() { Gemm(false, false, 2, 2, 3, 1, a, 3, b, 2, 0, c[:3], 2) }},
		{"parallel len c", func() { GemmParallel(2, false, false, 2, 2, 3, 1, a, 3, b, 2, 0, c[:3], 2) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			tc.f()
		})
	}
}

// TestGemmParallelIdentical checks that GemmParallel gives Gemm's result bit
// for bit, for 1 to 4 workers, both ways of splitting and ragged edges.
func TestGemmParallelIdentical(t *testing.T) {
	shapes := []gemmCase{
		{false, false, 32, 3001, 9, 0, 1, 0},
		{true, false, 290, 500, 64, 1, 1, 0},
		{false, true, 64, 290, 1500, 0, 1, 1},
		{false, false, 131, 127, 700, 3, 0.5, -2},
		{true, true, 600, 70, 100, 0, 1, 1},
	}
	for _, kern := range kernels() {
		t.Run(kern.name, func(t *testing.T) {
			useKernel(t, kern)
			rng := rand.New(rand.NewPCG(7, 8))
			for _, tc := range shapes {
				o := newOperands(rng, tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.pad)
				want := append([]float32(nil), o.c...)
				Gemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, o.a, o.lda, o.b, o.ldb, tc.beta, want, o.ldc)
				for w := 1; w <= 4; w++ {
					got := append([]float32(nil), o.c...)
					GemmParallel(w, tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, o.a, o.lda, o.b, o.ldb, tc.beta, got, o.ldc)
					for i := range got {
						if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
							t.Fatalf("%v, %d workers: c[%d] = %g, Gemm gives %g", tc, w, i, got[i], want[i])
						}
					}
				}
			}
		})
	}
}

func TestGemmAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	rng := rand.New(rand.NewPCG(9, 10))
	o := newOperands(rng, false, true, 70, 130, 400, 0)
	f := func() { Gemm(false, true, 70, 130, 400, 1, o.a, o.lda, o.b, o.ldb, 0, o.c, o.ldc) }
	f()
	if n := testing.AllocsPerRun(20, f); n != 0 {
		t.Errorf("Gemm allocates %v times per call, want 0", n)
	}
}

func FuzzGemm(f *testing.F) {
	f.Add(uint8(3), uint8(5), uint8(7), uint8(0), uint8(1), uint64(1))
	f.Add(uint8(1), uint8(1), uint8(1), uint8(3), uint8(0), uint64(2))
	f.Add(uint8(17), uint8(49), uint8(200), uint8(2), uint8(3), uint64(3))
	f.Fuzz(func(t *testing.T, m, n, k, flags, pad uint8, seed uint64) {
		rng := rand.New(rand.NewPCG(seed, 11))
		scalars := [][2]float32{{1, 0}, {1, 1}, {-2, 0.5}, {0, 1}}
		s := scalars[int(flags>>2)%len(scalars)]
		tc := gemmCase{flags&1 != 0, flags&2 != 0, int(m)%80 + 1, int(n)%120 + 1, int(k), int(pad % 4), s[0], s[1]}
		for _, kern := range kernels() {
			useKernel(t, kern)
			checkCase(t, rng, tc, 0)
		}
	})
}

func TestGemmParallelAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	rng := rand.New(rand.NewPCG(9, 10))
	o := newOperands(rng, false, false, 64, 2000, 64, 0)
	f := func() { GemmParallel(2, false, false, 64, 2000, 64, 1, o.a, o.lda, o.b, o.ldb, 0, o.c, o.ldc) }
	f()
	n := testing.AllocsPerRun(20, f)
	if n != 0 {
		t.Errorf("GemmParallel(2) allocates %v times per call, want 0", n)
	}
}

// A panic in a worker of GemmParallel, on the calling goroutine or another,
// is re-raised on the caller as a *pipeline.PanicError with the worker's
// stack, not a crash, and the next call works.
func TestGemmParallelWorkerPanic(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	o := newOperands(rng, false, false, 64, 2000, 64, 0)
	for _, bad := range []int{0, 1} {
		testHookWorker = func(w int) {
			if w == bad {
				panic(fmt.Sprintf("worker %d", w))
			}
		}
		v := func() (v any) {
			defer func() { v = recover() }()
			GemmParallel(2, false, false, 64, 2000, 64, 1, o.a, o.lda, o.b, o.ldb, 0, o.c, o.ldc)
			return nil
		}()
		testHookWorker = nil
		pe, ok := v.(*pipeline.PanicError)
		if !ok || pe.Value != fmt.Sprintf("worker %d", bad) || !strings.Contains(string(pe.Stack), "sgemm.(*job).work") {
			t.Fatalf("worker %d: recovered %v, want a *pipeline.PanicError with the worker's stack", bad, v)
		}
	}
	want := make([]float32, len(o.c))
	Gemm(false, false, 64, 2000, 64, 1, o.a, o.lda, o.b, o.ldb, 0, want, o.ldc)
	GemmParallel(2, false, false, 64, 2000, 64, 1, o.a, o.lda, o.b, o.ldb, 0, o.c, o.ldc)
	for i := range want {
		if math.Float32bits(o.c[i]) != math.Float32bits(want[i]) {
			t.Fatalf("after the panics: c[%d] = %v, Gemm %v", i, o.c[i], want[i])
		}
	}
}

// TestGemmEdgeIdentical checks that an element's value does not depend on
// the shape of c, so on whether a full tile, an edge kernel or a copied
// tile computed it: c's top-left m×n corner, computed alone, is bit for bit
// that of a larger product (whole tiles) with the same operands.
func TestGemmEdgeIdentical(t *testing.T) {
	nan := float32(math.NaN())
	for _, kern := range kernels() {
		t.Run(kern.name, func(t *testing.T) {
			useKernel(t, kern)
			rng := rand.New(rand.NewPCG(12, 13))
			bigM, bigN := roundUp(60, kern.mr), roundUp(200, kern.nr)
			ms := []int{1, 2, 3, 5, 7, 49, bigM - 1}
			ns := []int{1, 4, 17, 33, 49, 196, bigN - 1}
			ks := []int{9, 64, kern.kc + 5}
			if testing.Short() {
				ms, ns, ks = []int{3, 49}, []int{1, 17, 49, 196}, []int{9, kern.kc + 5}
			}
			for _, k := range ks {
				for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
					for _, sc := range [][2]float32{{1, 0}, {-0.75, 1.5}} {
						tA, tB, alpha, beta := tr[0], tr[1], sc[0], sc[1]
						o := newOperands(rng, tA, tB, bigM, bigN, k, 1)
						if beta == 0 {
							for i := range o.c {
								o.c[i] = nan
							}
						}
						want := append([]float32(nil), o.c...)
						Gemm(tA, tB, bigM, bigN, k, alpha, o.a, o.lda, o.b, o.ldb, beta, want, o.ldc)
						for _, m := range ms {
							for _, n := range ns {
								got := append([]float32(nil), o.c...)
								Gemm(tA, tB, m, n, k, alpha, o.a, o.lda, o.b, o.ldb, beta, got, o.ldc)
								for i := range m {
									for j := range n {
										x, y := got[i*o.ldc+j], want[i*o.ldc+j]
										if math.Float32bits(x) != math.Float32bits(y) {
											t.Fatalf("tA=%v,tB=%v,k=%d,alpha=%g,beta=%g: c[%d][%d] = %g for m×n = %d×%d, %g for %d×%d",
												tA, tB, k, alpha, beta, i, j, x, m, n, y, bigM, bigN)
										}
									}
								}
							}
						}
					}
				}
			}
		})
	}
}
