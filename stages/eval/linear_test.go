package eval

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/contrastream/contrastream/pipeline"
)

// Standardize: column 0 is 1, 2, 3 (mean 2, unbiased sd 1), column 1 is
// 10, 10, 10 (mean 10, sd 0, so 1e-6).
func TestStandardize(t *testing.T) {
	f := Features{N: 3, D: 2, Data: []float32{1, 10, 2, 10, 3, 10}, Labels: []int64{0, 0, 0}}
	mean, std := Standardize(f)
	if !slices.Equal(mean, []float32{2, 10}) {
		t.Errorf("mean %v, want [2 10]", mean)
	}
	if math.Abs(float64(std[0])-(1+1e-6)) > 1e-7 || std[1] != 1e-6 {
		t.Errorf("std %v, want [1+1e-6 1e-6]", std)
	}
	x := standardized(f, mean, std)
	for i, want := range []float32{-1, 0, 0, 0, 1, 0} {
		if math.Abs(float64(x[i]-want)) > 1e-5 {
			t.Errorf("standardized[%d] = %v, want %v", i, x[i], want)
		}
	}
	// The result of Linear carries the training features' statistics.
	r, err := Linear(f, f, LinearConfig{Iterations: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Mean, mean) || !slices.Equal(r.Std, std) {
		t.Errorf("Linear's standardisation %v %v, want %v %v", r.Mean, r.Std, mean, std)
	}
}

// Three classes in the plane, each a tight cluster around a corner of a
// triangle, far apart and at a large offset and scale (which
// standardisation removes): any reasonable classifier gets every point.
// Test points lie between each cluster and the centre.
func TestLinearSeparable(t *testing.T) {
	centres := [][2]float64{{1000, 0}, {0, 1000}, {-1000, -1000}}
	rng := rand.New(rand.NewPCG(5, 6))
	var train, test Features
	train.D, test.D = 2, 2
	for c, ctr := range centres {
		for range 20 {
			train.Data = append(train.Data, float32(5000+ctr[0]+50*rng.NormFloat64()), float32(-3000+ctr[1]+50*rng.NormFloat64()))
			train.Labels = append(train.Labels, int64(c))
			train.N++
		}
		test.Data = append(test.Data, float32(5000+ctr[0]/2), float32(-3000+ctr[1]/2))
		test.Labels = append(test.Labels, int64(c))
		test.N++
	}
	r, err := Linear(train, test, LinearConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Accuracy != 1 || r.Correct != 3 || !slices.Equal(r.Predictions, []int64{0, 1, 2}) || r.TrainAccuracy != 1 {
		t.Errorf("accuracy %v (%d/%d, predictions %v), train %v; want all right", r.Accuracy, r.Correct, r.Total, r.Predictions, r.TrainAccuracy)
	}
	if r.Classes != 3 || len(r.Weight) != 6 || len(r.Bias) != 3 {
		t.Errorf("classes %d, weight %d, bias %d", r.Classes, len(r.Weight), len(r.Bias))
	}
	if r.Loss > 0.1 {
		t.Errorf("training loss %v after %d iterations, want near 0", r.Loss, r.Iterations)
	}
	if !r.Converged || r.Iterations <= LinearWindow || r.Iterations >= MaxLinearIterations {
		t.Errorf("converged %v after %d iterations, want a stop between %d and %d", r.Converged, r.Iterations, LinearWindow, MaxLinearIterations)
	}
	fixed, err := Linear(train, test, LinearConfig{Iterations: ReferenceLinearIterations})
	if err != nil {
		t.Fatal(err)
	}
	if fixed.Converged || fixed.Iterations != ReferenceLinearIterations {
		t.Errorf("fixed count: converged %v after %d iterations, want false after %d", fixed.Converged, fixed.Iterations, ReferenceLinearIterations)
	}
}

// One feature, two classes split at x = 0, labels flipped for the test:
// the accuracy is exactly 0, and a longer fit keeps lowering the loss.
func TestLinearKnownAnswer(t *testing.T) {
	train := Features{N: 4, D: 1, Data: []float32{-2, -1, 1, 2}, Labels: []int64{0, 0, 1, 1}}
	test := Features{N: 2, D: 1, Data: []float32{-3, 3}, Labels: []int64{1, 0}}
	short, err := Linear(train, test, LinearConfig{Iterations: 50})
	if err != nil {
		t.Fatal(err)
	}
	long, err := Linear(train, test, LinearConfig{Iterations: 500})
	if err != nil {
		t.Fatal(err)
	}
	if long.Accuracy != 0 || !slices.Equal(long.Predictions, []int64{0, 1}) {
		t.Errorf("predictions %v, want [0 1]", long.Predictions)
	}
	if !(long.Loss < short.Loss) || long.TrainAccuracy != 1 {
		t.Errorf("loss %v after 500 iterations, %v after 50; train accuracy %v", long.Loss, short.Loss, long.TrainAccuracy)
	}
}

// The result is the same for any number of workers, and the same seed
// gives the same classifier.
func TestLinearDeterministic(t *testing.T) {
	train, test := randomFeatures(5000, 16, 4, 1), randomFeatures(300, 16, 4, 2)
	var first LinearResult
	for i, w := range []int{1, 3, 8} {
		r, err := Linear(train, test, LinearConfig{Iterations: 20, Workers: w, Seed: 7})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = r
			continue
		}
		if !slices.Equal(r.Weight, first.Weight) || !slices.Equal(r.Bias, first.Bias) || r.Loss != first.Loss {
			t.Errorf("workers %d: a different classifier from workers 1", w)
		}
	}
	other, _ := Linear(train, test, LinearConfig{Iterations: 20, Seed: 8})
	if slices.Equal(other.Weight, first.Weight) {
		t.Error("seeds 7 and 8 give the same classifier")
	}
}

func TestLinearErrors(t *testing.T) {
	ok := Features{N: 2, D: 1, Data: []float32{1, 2}, Labels: []int64{0, 1}}
	neg := -1.0
	for _, tc := range []struct {
		name      string
		tr, te    Features
		cfg       LinearConfig
		field     string
		mentioned string
	}{
		{"negative iterations", ok, ok, LinearConfig{Iterations: -1}, "iterations", ""},
		{"NaN lr", ok, ok, LinearConfig{LR: new(math.NaN())}, "lr", ""},
		{"zero lr", ok, ok, LinearConfig{LR: new(0.0)}, "lr", "got 0"},
		{"negative weight decay", ok, ok, LinearConfig{WeightDecay: &neg}, "weight_decay", ""},
		{"dimension mismatch", ok, Features{N: 1, D: 2, Data: []float32{1, 2}, Labels: []int64{0}}, LinearConfig{}, "", "dimensional"},
		{"unlabeled", Features{N: 1, D: 1, Data: []float32{1}, Labels: []int64{-1}}, ok, LinearConfig{}, "", "no label"},
		{"empty test", ok, Features{D: 1}, LinearConfig{}, "", "test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Linear(tc.tr, tc.te, tc.cfg)
			var fe *pipeline.FieldError
			switch {
			case err == nil:
				t.Fatal("no error")
			case tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field):
				t.Errorf("error %v does not name field %s", err, tc.field)
			case tc.mentioned != "" && !contains(err.Error(), tc.mentioned):
				t.Errorf("error %v lacks %q", err, tc.mentioned)
			}
		})
	}
}

// randomFeatures makes n labelled rows whose class shifts the first
// features, so that a linear classifier can learn something.
func randomFeatures(n, d, classes int, seed uint64) Features {
	rng := rand.New(rand.NewPCG(seed, 9))
	f := Features{N: n, D: d, Data: make([]float32, n*d), Labels: make([]int64, n)}
	for i := range n {
		c := rng.IntN(classes)
		f.Labels[i] = int64(c)
		for j := range d {
			v := rng.NormFloat64()
			if j%classes == c {
				v += 1
			}
			f.Data[i*d+j] = float32(v)
		}
	}
	return f
}

// The probe of full Fashion-MNIST's size: 60,000×128 features, 10
// classes, the reference's 300 iterations.
func BenchmarkLinear60k(b *testing.B) {
	train, test := randomFeatures(60000, 128, 10, 1), randomFeatures(10000, 128, 10, 2)
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		r, err := Linear(train, test, LinearConfig{Iterations: ReferenceLinearIterations})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "s/probe")
		b.ReportMetric(r.Accuracy, "accuracy")
	}
}

// CrossEntropy on hand-computed rows: equal logits (loss ln 2, gradient
// ∓½), and a huge logit gap (loss 1000, no overflow).
func TestCrossEntropy(t *testing.T) {
	logits := []float32{0, 0, 1000, 0}
	grad := make([]float32, 4)
	sum, correct := CrossEntropy(logits, []int64{0, 1}, 2, 0.5, grad)
	if math.Abs(sum-(math.Ln2+1000)) > 1e-9 || correct != 1 {
		t.Errorf("sum %v (want ln 2 + 1000), correct %d (want 1: ties go to class 0)", sum, correct)
	}
	for i, want := range []float32{-0.25, 0.25, 0.5, -0.5} {
		if math.Abs(float64(grad[i]-want)) > 1e-7 {
			t.Errorf("grad[%d] = %v, want %v", i, grad[i], want)
		}
	}
}

// A panic in a block of a pass, on the calling goroutine or a worker,
// comes back from Linear as an error with the stack, not a crash.
func TestLinearWorkerPanic(t *testing.T) {
	train, test := randomFeatures(5000, 8, 3, 1), randomFeatures(100, 8, 3, 2) // 3 blocks
	for _, workers := range []int{1, 3} {
		for _, bad := range []int{0, 2} {
			calls := 0
			testHookBlock = func(bi int) {
				if bi == bad {
					calls++ // one block with this index runs at a time
					if calls == 4 {
						panic(fmt.Sprintf("block %d", bi))
					}
				}
			}
			_, err := Linear(train, test, LinearConfig{Iterations: 10, Workers: workers})
			testHookBlock = nil
			var pe *pipeline.PanicError
			if !errors.As(err, &pe) || pe.Value != fmt.Sprintf("block %d", bad) || !strings.Contains(string(pe.Stack), "eval.Linear") {
				t.Fatalf("%d workers, block %d: err %v, want a *pipeline.PanicError with the stack", workers, bad, err)
			}
		}
	}
}
