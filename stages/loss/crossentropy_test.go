package loss_test

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/contrastream/contrastream/stages/eval"
	"github.com/contrastream/contrastream/stages/loss"
)

// CrossEntropy gives the mean and gradient of eval.CrossEntropy, the
// linear probe's, over the valid rows (to float32 rounding: eval rounds
// its exponentials to float32), zero rows for the padding, and its top-1;
// TestEveryLoss checks the gradient against finite differences.
func TestCrossEntropyAgainstEval(t *testing.T) {
	const n, valid, classes = 9, 7, 5
	r := rand.New(rand.NewPCG(4, 2))
	logits := make([]float32, n*classes)
	for i := range logits {
		logits[i] = float32(3 * r.NormFloat64())
	}
	labels := make([]int64, n)
	for i := range labels {
		labels[i] = int64(r.IntN(classes))
	}
	labels[n-1] = -1 // padding may carry anything
	l := mustNew(t, loss.Config{Type: loss.TypeCrossEntropy})
	var out loss.Outputs
	if err := l.Compute(loss.Inputs{Z: [2][]float32{logits}, N: n, D: classes, Labels: labels, Valid: valid}, &out); err != nil {
		t.Fatal(err)
	}
	grad := make([]float32, valid*classes)
	sum, correct := eval.CrossEntropy(logits[:valid*classes], labels[:valid], classes, 1/float64(valid), grad)
	if want := sum / valid; math.Abs(out.Loss-want) > 1e-12*want {
		t.Errorf("loss %.15g, eval's %.15g", out.Loss, want)
	}
	if want := float64(correct) / valid; out.Top1 != want || correct == 0 || correct == valid {
		t.Errorf("top-1 %v, eval's %d/%d (want some right, some wrong)", out.Top1, correct, valid)
	}
	for i, g := range grad {
		if d := math.Abs(float64(out.Grad[0][i] - g)); d > 1e-7 {
			t.Errorf("gradient [%d] %v, eval's %v", i, out.Grad[0][i], g)
		}
	}
	for i, g := range out.Grad[0][valid*classes:] {
		if g != 0 {
			t.Errorf("padding gradient [%d] = %v", valid*classes+i, g)
		}
	}
	if out.Anchors != valid || len(out.Grad[1]) != 0 || out.PosCos != 0 || out.NegCos != 0 {
		t.Errorf("anchors %d, view 2 gradient of %d values, cosines %v %v", out.Anchors, len(out.Grad[1]), out.PosCos, out.NegCos)
	}
}

// A label outside the classifier's classes, or missing labels, is an error
// that says so; the padding's labels are not read.
func TestCrossEntropyLabels(t *testing.T) {
	l := mustNew(t, loss.Config{Type: loss.TypeCrossEntropy})
	z := [2][]float32{{1, 2, 3, 4, 5, 6}}
	for _, tc := range []struct {
		name   string
		labels []int64
		valid  int
		want   string
	}{
		{"too large", []int64{0, 3}, 0, "sample 1 of the batch has label 3; the classifier has 3 classes"},
		{"negative", []int64{-1, 0}, 0, "sample 0 of the batch has label -1"},
		{"missing", []int64{0}, 0, "1 labels for 2 samples"},
		{"padding", []int64{2, 99}, 1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out loss.Outputs
			err := l.Compute(loss.Inputs{Z: z, N: 2, D: 3, Labels: tc.labels, Valid: tc.valid}, &out)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
	if err := l.Compute(loss.Inputs{Z: [2][]float32{{1, 2}}, N: 2, D: 3, Labels: []int64{0, 1}}, &loss.Outputs{}); err == nil || !strings.Contains(err.Error(), "len(Z[0]) = 2") {
		t.Errorf("logits of the wrong length: %v", err)
	}
	if kd, _ := loss.Lookup(loss.TypeCrossEntropy); kd.ReadViews() != 1 || kd.DefaultTemperature != 0 {
		t.Errorf("crossentropy reads %d views, temperature %v; want 1 and none", kd.ReadViews(), kd.DefaultTemperature)
	}
	if _, err := loss.New(loss.Config{Type: loss.TypeCrossEntropy, Temperature: new(0.5)}); err == nil {
		t.Error("crossentropy took a temperature")
	}
}
