package loss_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/stages/loss"
)

func randn32(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

func mustNew(t testing.TB, c loss.Config) loss.Loss {
	t.Helper()
	l, err := loss.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// randomInputs returns a batch of n samples of size d for any loss: labels
// of 3 classes and a queue of kq keys.
func randomInputs(seed uint64, n, d, kq int) loss.Inputs {
	r := rand.New(rand.NewPCG(seed, 1))
	labels := make([]int64, n)
	for i := range labels {
		labels[i] = int64(r.IntN(3))
	}
	return loss.Inputs{
		Z:      [2][]float32{randn32(r, n*d), randn32(r, n*d)},
		N:      n,
		D:      d,
		Labels: labels,
		Queue:  randn32(r, kq*d),
		K:      kq,
	}
}

// A class that appears once: its anchors' only positive is the other view.
// Samples 0 and 1 have label 0, sample 2 label 1; the views of class 0 all
// point along e1 and those of class 1 along e2 (lengths differ, so the
// normalisation matters). With T = 0.5 every cosine is 1 (same class) or 0:
//
//	class-0 anchor: 3 positives at 1/T, 2 negatives at 0
//	  L = log(3e^{1/T} + 2) − 1/T
//	class-1 anchor: 1 positive at 1/T, 4 negatives at 0
//	  L = log(e^{1/T} + 4) − 1/T
//	loss = (4·L0 + 2·L1) / 6
func TestSupConSingletonClass(t *testing.T) {
	const temp = 0.5
	l, err := loss.NewSupCon(loss.SupConConfig{Temperature: new(temp)})
	if err != nil {
		t.Fatal(err)
	}
	in := loss.Inputs{
		Z: [2][]float32{
			{2, 0, 0, 0.5, 0, 0, 0, 3, 0},
			{1, 0, 0, 4, 0, 0, 0, 0.25, 0},
		},
		N: 3, D: 3,
		Labels: []int64{7, 7, 3},
	}
	var out loss.Outputs
	if err := l.Compute(in, &out); err != nil {
		t.Fatal(err)
	}
	e := math.Exp(1 / temp)
	l0 := math.Log(3*e+2) - 1/temp
	l1 := math.Log(e+4) - 1/temp
	want := (4*l0 + 2*l1) / 6
	if math.Abs(out.Loss-want) > 1e-12*want {
		t.Errorf("loss %.15g, want %.15g", out.Loss, want)
	}
	if out.Anchors != 6 || out.PosCos != 1 || out.NegCos != 0 || out.Top1 != 1 {
		t.Errorf("anchors %d, pos cos %g, neg cos %g, top1 %g; want 6, 1, 0, 1", out.Anchors, out.PosCos, out.NegCos, out.Top1)
	}
	for v := range 2 {
		for i, g := range out.Grad[v] {
			if math.IsNaN(float64(g)) || math.IsInf(float64(g), 0) {
				t.Fatalf("Grad[%d][%d] = %g", v, i, g)
			}
		}
	}
}

// Padding: a batch of N with Valid real samples gives what the first Valid
// samples alone give, and zero gradient rows for the rest. The padding
// copies earlier samples, labels included, as collate's "pad" does, so a
// padded sample left in would add positives and change the loss.
func TestPadding(t *testing.T) {
	const n, valid, d, kq = 7, 4, 5, 11
	for _, typ := range []string{loss.TypeInfoNCE, loss.TypeNTXent, loss.TypeSupCon} {
		t.Run(typ, func(t *testing.T) {
			full := randomInputs(7, n, d, kq)
			for i := valid; i < n; i++ { // padding = copies of the first samples
				for v := range 2 {
					copy(full.Z[v][i*d:(i+1)*d], full.Z[v][(i-valid)*d:])
				}
				full.Labels[i] = full.Labels[i-valid]
			}
			full.Valid = valid
			alone := full
			alone.N, alone.Valid = valid, 0
			alone.Z = [2][]float32{full.Z[0][:valid*d], full.Z[1][:valid*d]}
			alone.Labels = full.Labels[:valid]

			l := mustNew(t, loss.Config{Type: typ})
			var a, b loss.Outputs
			if err := l.Compute(full, &a); err != nil {
				t.Fatal(err)
			}
			if err := l.Compute(alone, &b); err != nil {
				t.Fatal(err)
			}
			if a.Loss != b.Loss || a.PosCos != b.PosCos || a.NegCos != b.NegCos || a.Top1 != b.Top1 || a.Anchors != b.Anchors {
				t.Errorf("padded %+v\nalone  %+v", a, b)
			}
			nAnchors := 2 * valid
			if typ == loss.TypeInfoNCE {
				nAnchors = valid
			}
			if a.Anchors != nAnchors {
				t.Errorf("Anchors = %d, want %d", a.Anchors, nAnchors)
			}
			for v := range 2 {
				if len(a.Grad[v]) != len(b.Grad[v])*n/valid {
					t.Fatalf("len(Grad[%d]) = %d for N = %d, %d for N = %d", v, len(a.Grad[v]), n, len(b.Grad[v]), valid)
				}
				for i, g := range a.Grad[v] {
					if i < valid*d && g != b.Grad[v][i] || i >= valid*d && g != 0 {
						t.Fatalf("Grad[%d][%d] = %g (alone: %v)", v, i, g, b.Grad[v])
					}
				}
			}
		})
	}
}

// After the first call, a step of the same shape allocates nothing, on one
// goroutine or several.
func TestNoAllocs(t *testing.T) {
	for _, typ := range []string{loss.TypeInfoNCE, loss.TypeNTXent, loss.TypeSupCon} {
		for _, workers := range []int{1, 3} {
			t.Run(fmt.Sprintf("%s/workers=%d", typ, workers), func(t *testing.T) {
				testNoAllocs(t, typ, workers)
			})
		}
	}
}

func testNoAllocs(t *testing.T, typ string, workers int) {
	if typ == loss.TypeInfoNCE && raceEnabled {
		t.Skip("the race detector makes sync.Pool drop the SGEMM kernel's buffers; run without -race")
	}
	in := randomInputs(9, 16, 8, 40)
	in.Valid = 13
	l := mustNew(t, loss.Config{Type: typ, Workers: workers})
	var out loss.Outputs
	if err := l.Compute(in, &out); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(20, func() {
		if err := l.Compute(in, &out); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per call, want 0", allocs)
	}
}

// The results are the same, bit for bit, whatever the number of workers,
// including row counts that are not multiples of 4.
func TestWorkersDeterministic(t *testing.T) {
	for _, typ := range []string{loss.TypeInfoNCE, loss.TypeNTXent, loss.TypeSupCon} {
		for _, valid := range []int{1, 6, 13, 21} {
			in := randomInputs(13, 21, 9, 30)
			in.Valid = valid
			var want loss.Outputs
			for _, workers := range []int{1, 2, 3, 8} {
				var out loss.Outputs
				if err := mustNew(t, loss.Config{Type: typ, Workers: workers}).Compute(in, &out); err != nil {
					t.Fatal(err)
				}
				if workers == 1 {
					want = out
					continue
				}
				if out.Loss != want.Loss || out.PosCos != want.PosCos || out.NegCos != want.NegCos || out.Top1 != want.Top1 ||
					!slices.Equal(out.Grad[0], want.Grad[0]) || !slices.Equal(out.Grad[1], want.Grad[1]) {
					t.Errorf("%s, valid %d: %d workers differ from 1", typ, valid, workers)
				}
			}
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   error
		field string
	}{
		{"config negative", loss.Config{Temperature: new(-0.1)}.Validate(), "temperature"},
		{"config NaN", loss.Config{Temperature: new(math.NaN())}.Validate(), "temperature"},
		{"config tiny", loss.Config{Type: "supcon", Temperature: new(1e-9)}.Validate(), "temperature"},
		{"config type", loss.Config{Type: "moco"}.Validate(), "type"},
		{"infonce inf", loss.InfoNCEConfig{Temperature: new(math.Inf(1))}.Validate(), "temperature"},
		{"ntxent negative", loss.NTXentConfig{Temperature: new(-1.0)}.Validate(), "temperature"},
		{"supcon negative", loss.SupConConfig{Temperature: new(-1.0)}.Validate(), "temperature"},
		{"config workers", loss.Config{Workers: -1}.Validate(), "workers"},
		{"supcon workers", loss.SupConConfig{Workers: loss.MaxWorkers + 1}.Validate(), "workers"},
		{"config ok", loss.Config{Type: "ntxent", Temperature: new(0.07), Workers: 4}.Validate(), ""},
		{"zero ok", loss.Config{}.Validate(), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.field == "" {
				if tc.err != nil {
					t.Fatalf("unexpected error %v", tc.err)
				}
				return
			}
			var fe *pipeline.FieldError
			if !errors.As(tc.err, &fe) || fe.Field != tc.field {
				t.Fatalf("error %v, want a *pipeline.FieldError for %q", tc.err, tc.field)
			}
		})
	}
	if _, err := loss.NewSupCon(loss.SupConConfig{Temperature: new(-1.0)}); err == nil {
		t.Error("NewSupCon accepted a negative temperature")
	}
}

// TestZeroTemperature: a temperature written as 0 is refused, naming the
// field, by every config and constructor; only a temperature left out
// (nil) means the default. (0 used to mean the default silently.)
func TestZeroTemperature(t *testing.T) {
	zero := new(0.0)
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"config", loss.Config{Temperature: zero}.Validate()},
		{"config ntxent", loss.Config{Type: "ntxent", Temperature: zero}.Validate()},
		{"infonce", loss.InfoNCEConfig{Temperature: zero}.Validate()},
		{"ntxent", loss.NTXentConfig{Temperature: zero}.Validate()},
		{"supcon", loss.SupConConfig{Temperature: zero}.Validate()},
	} {
		var fe *pipeline.FieldError
		if !errors.As(tc.err, &fe) || fe.Field != "temperature" || !strings.Contains(fe.Msg, "got 0") {
			t.Errorf("%s: temperature 0 gave %v, want a FieldError for temperature saying it got 0", tc.name, tc.err)
		}
	}
	if l, err := loss.New(loss.Config{Type: "supcon", Temperature: zero}); err == nil {
		t.Errorf("New built %s at T = %g from temperature 0", l.Name(), l.(interface{ Temperature() float64 }).Temperature())
	}
	if _, err := loss.NewInfoNCE(loss.InfoNCEConfig{Temperature: zero}); err == nil {
		t.Error("NewInfoNCE accepted temperature 0")
	}
}

func TestNewDefaults(t *testing.T) {
	type tempered interface{ Temperature() float64 }
	for _, tc := range []struct {
		cfg  loss.Config
		name string
		temp float64
	}{
		{loss.Config{}, "infonce", 0.2},
		{loss.Config{Type: "ntxent"}, "ntxent", 0.5},
		{loss.Config{Type: "supcon"}, "supcon", 0.1},
		{loss.Config{Type: "supcon", Temperature: new(0.07)}, "supcon", 0.07},
	} {
		l := mustNew(t, tc.cfg)
		if l.Name() != tc.name || l.(tempered).Temperature() != tc.temp {
			t.Errorf("New(%+v): %s at T = %g, want %s at %g", tc.cfg, l.Name(), l.(tempered).Temperature(), tc.name, tc.temp)
		}
	}
}

func TestComputeErrors(t *testing.T) {
	good := randomInputs(3, 4, 3, 5)
	for _, tc := range []struct {
		typ    string
		change func(*loss.Inputs)
		want   string
	}{
		{"ntxent", func(in *loss.Inputs) { in.D = 0 }, "D = 0"},
		{"ntxent", func(in *loss.Inputs) { in.Z[1] = in.Z[1][:5] }, "len(Z[1])"},
		{"ntxent", func(in *loss.Inputs) { in.Valid = 5 }, "Valid = 5"},
		{"supcon", func(in *loss.Inputs) { in.Valid = -1 }, "Valid = -1"},
		{"supcon", func(in *loss.Inputs) { in.Labels = in.Labels[:3] }, "3 labels"},
		{"supcon", func(in *loss.Inputs) { in.Labels = []int64{0, -1, 0, 1} }, "sample 1"},
		{"infonce", func(in *loss.Inputs) { in.K = 0 }, "K = 0"},
		{"infonce", func(in *loss.Inputs) { in.Queue = in.Queue[:14] }, "queue of 14"},
	} {
		in := good
		in.Labels = append([]int64(nil), good.Labels...)
		tc.change(&in)
		err := mustNew(t, loss.Config{Type: tc.typ}).Compute(in, &loss.Outputs{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one that says %q", tc.typ, err, tc.want)
		}
	}
	// An unlabelled padded sample is fine: it takes no part.
	in := good
	in.Labels, in.Valid = []int64{0, 1, 0, -1}, 3
	if err := mustNew(t, loss.Config{Type: "supcon"}).Compute(in, &loss.Outputs{}); err != nil {
		t.Errorf("unlabelled padding: %v", err)
	}
}

// NT-Xent is SupCon with one class per sample.
func TestNTXentIsSupConOfDistinctLabels(t *testing.T) {
	in := randomInputs(11, 6, 4, 1)
	for i := range in.Labels {
		in.Labels[i] = int64(10 * i)
	}
	var a, b loss.Outputs
	if err := mustNew(t, loss.Config{Type: "ntxent", Temperature: new(0.3)}).Compute(in, &a); err != nil {
		t.Fatal(err)
	}
	if err := mustNew(t, loss.Config{Type: "supcon", Temperature: new(0.3)}).Compute(in, &b); err != nil {
		t.Fatal(err)
	}
	if a.Loss != b.Loss || relErr(a.Grad[0], b.Grad[0]) != 0 || relErr(a.Grad[1], b.Grad[1]) != 0 {
		t.Errorf("ntxent %g, supcon %g", a.Loss, b.Loss)
	}
}

// The gradient buffers the caller passes in are the ones filled.
func TestGradBuffersReused(t *testing.T) {
	in := randomInputs(5, 4, 3, 2)
	buf := [2][]float32{make([]float32, 0, 64), make([]float32, 0, 64)}
	out := loss.Outputs{Grad: buf}
	if err := mustNew(t, loss.Config{Type: "ntxent"}).Compute(in, &out); err != nil {
		t.Fatal(err)
	}
	for v := range 2 {
		if len(out.Grad[v]) != 12 || &out.Grad[v][:1][0] != &buf[v][:1][0] {
			t.Errorf("Grad[%d] was not the caller's buffer resliced to 12", v)
		}
	}
}

func TestSplitJoinViews(t *testing.T) {
	f := []float32{1, 2, 3, 4, 5, 6, 7, 8} // n = 2, d = 2: s0v0 s0v1 s1v0 s1v1
	z := loss.SplitViews([2][]float32{}, f, 2, 2)
	if relErr(z[0], []float32{1, 2, 5, 6}) != 0 || relErr(z[1], []float32{3, 4, 7, 8}) != 0 {
		t.Fatalf("SplitViews: %v", z)
	}
	if g := loss.JoinViews(nil, z, 2, 2); relErr(g, f) != 0 {
		t.Fatalf("JoinViews: %v", g)
	}
}

func cos32(a, b []float32) float64 {
	var ab, aa, bb float64
	for k := range a {
		ab += float64(a[k]) * float64(b[k])
		aa += float64(a[k]) * float64(a[k])
		bb += float64(b[k]) * float64(b[k])
	}
	return ab / math.Sqrt(aa*bb)
}

// PosCos and NegCos are the means over the (anchor, candidate) pairs.
func TestMetrics(t *testing.T) {
	const n, d, kq = 6, 5, 7
	in := randomInputs(17, n, d, kq)
	row := func(v, i int) []float32 { return in.Z[v][i*d : (i+1)*d] }

	var pos, neg float64
	for i := range n {
		pos += cos32(row(0, i), row(1, i))
		for j := range kq {
			neg += cos32(row(0, i), in.Queue[j*d:(j+1)*d])
		}
	}
	var out loss.Outputs
	if err := mustNew(t, loss.Config{Type: "infonce"}).Compute(in, &out); err != nil {
		t.Fatal(err)
	}
	// InfoNCE takes the cosines with the queue in float32.
	if math.Abs(out.PosCos-pos/n) > 1e-12 || math.Abs(out.NegCos-neg/(n*kq)) > 1e-7 {
		t.Errorf("infonce: pos %g neg %g, want %g %g", out.PosCos, out.NegCos, pos/n, neg/(n*kq))
	}

	// NT-Xent: each ordered pair of views that are not the same sample is
	// a negative; (a, p) and (p, a) are both positives.
	pos, neg = 0, 0
	for i := range n {
		pos += 2 * cos32(row(0, i), row(1, i))
		for j := range n {
			if j != i {
				for v := range 2 {
					for w := range 2 {
						neg += cos32(row(v, i), row(w, j))
					}
				}
			}
		}
	}
	if err := mustNew(t, loss.Config{Type: "ntxent"}).Compute(in, &out); err != nil {
		t.Fatal(err)
	}
	if math.Abs(out.PosCos-pos/(2*n)) > 1e-12 || math.Abs(out.NegCos-neg/(2*n*(2*n-2))) > 1e-12 {
		t.Errorf("ntxent: pos %g neg %g, want %g %g", out.PosCos, out.NegCos, pos/(2*n), neg/(2*n*(2*n-2)))
	}
	if out.Top1 < 0 || out.Top1 > 1 {
		t.Errorf("ntxent: top1 %g", out.Top1)
	}
}
