package loss

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/contrastream/contrastream/pipeline"
)

func randn(r *rand.Rand, n int) []float64 {
	x := make([]float64, n)
	for i := range x {
		x[i] = r.NormFloat64()
	}
	return x
}

// fdCheck compares grad with central differences of f at x, in float64.
func fdCheck(t *testing.T, name string, x, grad []float64, f func() float64) {
	t.Helper()
	fdCheckTol(t, name, x, grad, f, 1e-6, 1e-6)
}

// fdCheckTol is fdCheck with step h and tolerance tol, for a loss that
// rounds through float32: its noise (about 1e-7 of the loss) over 2h must
// stay well under tol.
func fdCheckTol(t *testing.T, name string, x, grad []float64, f func() float64, h, tol float64) {
	t.Helper()
	var maxG, maxD float64
	for i := range x {
		orig := x[i]
		x[i] = orig + h
		lp := f()
		x[i] = orig - h
		lm := f()
		x[i] = orig
		fd := (lp - lm) / (2 * h)
		maxG = max(maxG, math.Abs(grad[i]))
		maxD = max(maxD, math.Abs(fd-grad[i]))
	}
	rel := maxD / maxG
	t.Logf("%s: max |analytic − finite difference| / max |analytic| = %.3g", name, rel)
	if !(rel < tol) {
		t.Errorf("%s: gradient off by %.3g relative", name, rel)
	}
}

func TestGradCheckPairwise(t *testing.T) {
	const n, d, temp = 5, 7, 0.3
	m := 2 * n
	ntxent := make([]int64, m)
	supcon := make([]int64, m)
	for i := range n {
		ntxent[i], ntxent[n+i] = int64(i), int64(i)
		y := int64([]int{0, 1, 0, 2, 1}[i]) // class 2 appears once
		supcon[i], supcon[n+i] = y, y
	}
	// Embedding 0 in a group of its own: an anchor without positives.
	lonely := append([]int64(nil), supcon...)
	lonely[0] = 9
	for _, tc := range []struct {
		name  string
		group []int64
	}{{"ntxent", ntxent}, {"supcon", supcon}, {"supcon-lonely", lonely}} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			x := randn(r, m*d)
			gx := make([]float64, m*d)
			var p pairwise
			st, err := p.compute(x, tc.group, m, d, temp, gx)
			if err != nil {
				t.Fatal(err)
			}
			want := naivePairwise(x, tc.group, m, d, temp)
			if math.Abs(st.loss-want) > 1e-12*math.Abs(want) {
				t.Errorf("loss %.15g, naive %.15g", st.loss, want)
			}
			scratch := make([]float64, m*d)
			fdCheck(t, tc.name, x, gx, func() float64 { st, _ := p.compute(x, tc.group, m, d, temp, scratch); return st.loss })
		})
	}
}

// naivePairwise is the loss of pairwise.compute written straight from its
// definition, without the shared row maximum or any reuse.
func naivePairwise(x []float64, group []int64, m, d int, temp float64) float64 {
	cos := func(a, b int) float64 {
		var ab, aa, bb float64
		for k := range d {
			ab += x[a*d+k] * x[b*d+k]
			aa += x[a*d+k] * x[a*d+k]
			bb += x[b*d+k] * x[b*d+k]
		}
		return ab / math.Sqrt(aa*bb)
	}
	var total float64
	anchors := 0
	for a := range m {
		var den float64
		for b := range m {
			if b != a {
				den += math.Exp(cos(a, b) / temp)
			}
		}
		var s float64
		np := 0
		for b := range m {
			if b != a && group[b] == group[a] {
				s += math.Log(math.Exp(cos(a, b)/temp) / den)
				np++
			}
		}
		if np > 0 {
			total += -s / float64(np)
			anchors++
		}
	}
	return total / float64(anchors)
}

func TestGradCheckInfoNCE(t *testing.T) {
	const n, d, kq, temp = 5, 6, 9, 0.2
	r := rand.New(rand.NewPCG(3, 4))
	q, k, u := randn(r, n*d), randn(r, n*d), randn(r, kq*d)
	u32 := make([]float32, len(u))
	toFloat32(u32, u)
	var s infonce
	if err := s.setQueue(u32, kq, d); err != nil {
		t.Fatal(err)
	}
	gq := make([]float64, n*d)
	st, err := s.compute(q, k, n, d, temp, gq)
	if err != nil {
		t.Fatal(err)
	}

	// The loss from its definition, with the float32 queue as compute sees
	// it; compute takes the cosines with the queue in float32.
	var want float64
	for i := range n {
		qi := q[i*d : (i+1)*d]
		uni := func(v []float64) []float64 {
			o := make([]float64, len(v))
			nn := math.Sqrt(dot(v, v))
			for j := range v {
				o[j] = v[j] / nn
			}
			return o
		}
		qh := uni(qi)
		pos := dot(qh, uni(k[i*d:(i+1)*d])) / temp
		den := math.Exp(pos)
		for j := range kq {
			row := make([]float64, d)
			toFloat64(row, u32[j*d:(j+1)*d])
			den += math.Exp(dot(qh, uni(row)) / temp)
		}
		want += -math.Log(math.Exp(pos) / den)
	}
	want /= n
	if math.Abs(st.loss-want) > 1e-6*want {
		t.Errorf("loss %.15g, naive %.15g", st.loss, want)
	}
	scratch := make([]float64, n*d)
	fdCheckTol(t, "infonce q", q, gq, func() float64 { st, _ := s.compute(q, k, n, d, temp, scratch); return st.loss }, 1e-3, 2e-3)
}

// An anchor whose group has no other member is left out of the mean and
// gets no gradient as an anchor, but stays a negative of the others.
func TestPairwiseNoPositive(t *testing.T) {
	const m, d, temp = 5, 3, 0.5
	r := rand.New(rand.NewPCG(5, 6))
	x := randn(r, m*d)
	group := []int64{0, 0, 1, 1, 2} // embedding 4 has no positive
	gx := make([]float64, m*d)
	var p pairwise
	st, _ := p.compute(x, group, m, d, temp, gx)
	if st.anchors != 4 {
		t.Errorf("anchors = %d, want 4", st.anchors)
	}
	if math.IsNaN(st.loss) || math.IsInf(st.loss, 0) {
		t.Fatalf("loss %v", st.loss)
	}
	// Without embedding 4 at all the loss differs: it is a negative.
	var q pairwise
	without, _ := q.compute(x[:4*d], group[:4], 4, d, temp, make([]float64, 4*d))
	if st.loss == without.loss {
		t.Errorf("the lonely embedding is not a negative of the others")
	}
	// Every embedding alone: loss 0, gradient 0, no anchors.
	st, _ = p.compute(x, []int64{0, 1, 2, 3, 4}, m, d, temp, gx)
	if st != (stats{}) {
		t.Errorf("no positives anywhere: %+v, want zero stats", st)
	}
	for i, v := range gx {
		if v != 0 {
			t.Fatalf("gx[%d] = %g, want 0", i, v)
		}
	}
}

func TestNormalizeClamp(t *testing.T) {
	// A zero row: x̂ = 0 and the gradient is g / eps, as F.normalize's.
	x := []float64{0, 0, 3, 4}
	xh, nrm, gx := make([]float64, 4), make([]float64, 2), make([]float64, 4)
	normalize(xh, nrm, x, 2, 2)
	if xh[0] != 0 || xh[1] != 0 || math.Abs(xh[2]-0.6) > 1e-15 || math.Abs(xh[3]-0.8) > 1e-15 {
		t.Fatalf("normalize: %v", xh)
	}
	normalizeBackward(gx, []float64{1, 2, 1, 0}, xh, nrm, 2, 2, 1)
	want := []float64{1 / normEps, 2 / normEps, (1 - 0.6*0.6) / 5, (0 - 0.6*0.8) / 5}
	for i := range want {
		if math.Abs(gx[i]-want[i]) > 1e-12*math.Abs(want[i]) {
			t.Errorf("gx[%d] = %g, want %g", i, gx[i], want[i])
		}
	}
}

type panicky struct{}

func (panicky) phase(p, w, lo, hi int) {
	if lo > 0 {
		panic("boom")
	}
}

// A panic in a worker comes back from run as a *pipeline.PanicError with
// the stack, and the team runs again afterwards.
func TestTeamPanic(t *testing.T) {
	for _, workers := range []int{1, 3} {
		tm := newTeam(workers, panicky{})
		err := tm.run(0, 12)
		if workers == 1 {
			if err != nil {
				t.Errorf("1 worker: %v", err)
			}
			continue
		}
		var pe *pipeline.PanicError
		if !errors.As(err, &pe) || pe.Value != "boom" || !strings.Contains(err.Error(), "goroutine") || !strings.Contains(string(pe.Stack), "panicky") {
			t.Errorf("%d workers: error %v, want the panic with its stack", workers, err)
		}
		if err := tm.run(0, 3); err != nil {
			t.Errorf("%d workers, run after the panic: %v", workers, err)
		}
	}
}

// A panic in a worker of a real loss comes back from Compute, the public
// entry point, as an error with the stack, not a crash, and the loss works
// again afterwards.
func TestComputeWorkerPanic(t *testing.T) {
	const n, d, kq = 16, 8, 12
	rng := rand.New(rand.NewPCG(3, 4))
	vals := func(k int) []float32 {
		v := make([]float32, k)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}
	in := Inputs{Z: [2][]float32{vals(n * d), vals(n * d)}, N: n, D: d, Labels: make([]int64, n), Queue: vals(kq * d), K: kq}
	for _, typ := range []string{TypeInfoNCE, TypeNTXent, TypeSupCon} {
		t.Run(typ, func(t *testing.T) {
			l, err := New(Config{Type: typ, Workers: 3})
			if err != nil {
				t.Fatal(err)
			}
			testHookTask = func(_, lo int) {
				if lo > 0 {
					panic(fmt.Sprintf("boom at row %d", lo))
				}
			}
			var out Outputs
			err = l.Compute(in, &out)
			testHookTask = nil
			var pe *pipeline.PanicError
			if !errors.As(err, &pe) || !strings.Contains(fmt.Sprint(pe.Value), "boom at row") || !strings.Contains(err.Error(), "goroutine ") {
				t.Fatalf("Compute = %v, want a *pipeline.PanicError with the stack", err)
			}
			if err := l.Compute(in, &out); err != nil {
				t.Fatalf("Compute after the panic: %v", err)
			}
		})
	}
}
