package eval

import (
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/contrastream/contrastream/pipeline"
)

// A hand-made case: memory points on the unit circle, two classes.
// Query (1, 0.1) is nearest to the class-0 points at angles 0 and 0.2; with
// k = 3 the third neighbour (angle 1.0, class 1) is outvoted, and with
// k = 4 two class-1 points near angle 1 still lose to the two close class-0
// points because exp(cos/T) weighs the close ones far more.
func TestKNNHandMade(t *testing.T) {
	angles := []float64{0, 0.2, 1.0, 1.1, 3.0}
	labels := []int64{0, 0, 1, 1, 1}
	mem := Features{N: 5, D: 2, Labels: labels}
	for _, a := range angles {
		mem.Data = append(mem.Data, float32(math.Cos(a)), float32(math.Sin(a)))
	}
	qs := Features{N: 3, D: 2, Data: []float32{1, 0.1, 0.5, 0.9, -1, 0.2}, Labels: []int64{0, 1, 1}}
	for _, tc := range []struct {
		k    int
		want []int64
	}{
		{1, []int64{0, 1, 1}},
		{3, []int64{0, 1, 1}},
		{4, []int64{0, 1, 1}},
		{200, []int64{0, 1, 1}}, // k capped at the memory's size
	} {
		r, err := KNN(mem, qs, KNNConfig{K: tc.k})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(r.Predictions, tc.want) || r.Accuracy != 1 || r.Correct != 3 {
			t.Errorf("k=%d: %+v, want predictions %v", tc.k, r, tc.want)
		}
	}
	// The weights matter: one class-0 point at angle 0 against two class-1
	// points at 0.5 and 0.55, query at 0.05, k = 3. A plain majority says 1;
	// with T = 0.1 the close point's e^{10·cos 0.05} = 21,763 outweighs
	// e^{10·cos 0.45} + e^{10·cos 0.5} = 8,127 + 6,485, so 0 wins; with T = 1
	// the votes are 2.71 against 4.87 and 1 wins.
	w := Features{N: 3, D: 2, Labels: []int64{0, 1, 1}}
	for _, a := range []float64{0, 0.5, 0.55} {
		w.Data = append(w.Data, float32(math.Cos(a)), float32(math.Sin(a)))
	}
	q := Features{N: 1, D: 2, Data: []float32{float32(math.Cos(0.05)), float32(math.Sin(0.05))}, Labels: []int64{0}}
	for _, tc := range []struct {
		temp float64
		want int64
	}{{0.1, 0}, {1, 1}} {
		r, err := KNN(w, q, KNNConfig{K: 3, Temperature: new(tc.temp)})
		if err != nil || r.Predictions[0] != tc.want {
			t.Errorf("T=%v: predicted %v (%v), want %d", tc.temp, r.Predictions, err, tc.want)
		}
	}
}

// KNN must agree with a direct sort on random data.
func TestKNNMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	gen := func(n, d int) Features {
		f := Features{N: n, D: d, Data: make([]float32, n*d), Labels: make([]int64, n)}
		for i := range f.Data {
			f.Data[i] = float32(rng.NormFloat64())
		}
		for i := range f.Labels {
			f.Labels[i] = int64(rng.IntN(4))
		}
		return f
	}
	mem, qs := gen(300, 8), gen(50, 8)
	r, err := KNN(mem, qs, KNNConfig{K: 20, Temperature: new(0.5), Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	m, q := normalised(mem), normalised(qs)
	for i := range qs.N {
		idx := make([]int, mem.N)
		for j := range idx {
			idx[j] = j
		}
		sim := func(j int) float32 { return dot(q[i*8:(i+1)*8], m[j*8:(j+1)*8]) }
		sort.SliceStable(idx, func(a, b int) bool { return sim(idx[a]) > sim(idx[b]) })
		votes := make([]float64, 4)
		for _, j := range idx[:20] {
			votes[mem.Labels[j]] += math.Exp(float64(sim(j)) / 0.5)
		}
		best := 0
		for c := range votes {
			if votes[c] > votes[best] {
				best = c
			}
		}
		if r.Predictions[i] != int64(best) {
			t.Fatalf("query %d: %d, brute force %d", i, r.Predictions[i], best)
		}
	}
}

func TestKNNErrors(t *testing.T) {
	ok := Features{N: 1, D: 2, Data: []float32{1, 0}, Labels: []int64{0}}
	for _, tc := range []struct {
		name     string
		mem, qs  Features
		cfg      KNNConfig
		field    string
		contains string
	}{
		{"negative k", ok, ok, KNNConfig{K: -1}, "k", ""},
		{"bad temperature", ok, ok, KNNConfig{Temperature: new(math.Inf(1))}, "temperature", ""},
		{"zero temperature", ok, ok, KNNConfig{Temperature: new(0.0)}, "temperature", "got 0"},
		{"negative temperature", ok, ok, KNNConfig{Temperature: new(-0.1)}, "temperature", ""},
		{"dimension mismatch", ok, Features{N: 1, D: 3, Data: []float32{1, 0, 0}, Labels: []int64{0}}, KNNConfig{}, "", "dimensional"},
		{"short data", Features{N: 2, D: 2, Data: []float32{1, 0}, Labels: []int64{0, 1}}, ok, KNNConfig{}, "", "memory"},
		{"unlabeled", Features{N: 1, D: 2, Data: []float32{1, 0}, Labels: []int64{-1}}, ok, KNNConfig{}, "", "no label"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := KNN(tc.mem, tc.qs, tc.cfg)
			var fe *pipeline.FieldError
			switch {
			case err == nil:
				t.Fatal("no error")
			case tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field):
				t.Errorf("error %v does not name field %s", err, tc.field)
			case tc.contains != "" && !contains(err.Error(), tc.contains):
				t.Errorf("error %v lacks %q", err, tc.contains)
			}
		})
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func BenchmarkKNN(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	gen := func(n int) Features {
		f := Features{N: n, D: 128, Data: make([]float32, n*128), Labels: make([]int64, n)}
		for i := range f.Data {
			f.Data[i] = float32(rng.NormFloat64())
		}
		for i := range f.Labels {
			f.Labels[i] = int64(rng.IntN(10))
		}
		return f
	}
	mem, qs := gen(10000), gen(500)
	b.ResetTimer()
	for b.Loop() {
		if _, err := KNN(mem, qs, KNNConfig{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(qs.N*b.N)/b.Elapsed().Seconds(), "queries/s")
}

// A panic while scoring a query, on the calling goroutine or a worker,
// comes back from KNN as an error with the stack, not a crash, and leaves
// no goroutine behind; the predictions do not depend on the workers.
func TestKNNWorkerPanic(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	f := Features{N: 60, D: 4, Data: make([]float32, 240), Labels: make([]int64, 60)}
	for i := range f.Data {
		f.Data[i] = float32(rng.NormFloat64())
	}
	for i := range f.Labels {
		f.Labels[i] = int64(i % 3)
	}
	want, err := KNN(f, f, KNNConfig{K: 5, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, workers := range []int{1, 2, 7} {
		got, err := KNN(f, f, KNNConfig{K: 5, Workers: workers})
		if err != nil || !slices.Equal(got.Predictions, want.Predictions) {
			t.Errorf("%d workers: %v, %v; 1 worker: %v", workers, got.Predictions, err, want.Predictions)
		}
		before := runtime.NumGoroutine()
		testHookQuery = func(q int) {
			if q == 37 {
				panic("query 37")
			}
		}
		_, err = KNN(f, f, KNNConfig{K: 5, Workers: workers})
		testHookQuery = nil
		var pe *pipeline.PanicError
		if !errors.As(err, &pe) || pe.Value != "query 37" || !strings.Contains(string(pe.Stack), "eval.KNN") {
			t.Fatalf("%d workers: err %v, want a *pipeline.PanicError with the stack", workers, err)
		}
		for deadline := time.Now().Add(time.Second); runtime.NumGoroutine() > before && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			t.Errorf("%d workers: %d goroutines after KNN, %d before", workers, n, before)
		}
	}
}
