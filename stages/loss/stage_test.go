package loss

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/contrastream/contrastream/pipeline"
)

func TestAlignUniform(t *testing.T) {
	// Two samples, d = 2: views equal (alignment 0); the samples are
	// orthogonal unit vectors, ‖ẑ₀−ẑ₁‖² = 2, so uniformity = log e^{−4} = −4.
	z := [2][]float32{{3, 0, 0, 2}, {1, 0, 0, 5}}
	var m pipeline.StepMetrics
	AlignUniform(z, 2, 2, 2, nil, &m)
	if m.Alignment != 0 || math.Abs(m.Uniformity+4) > 1e-12 {
		t.Errorf("alignment %v uniformity %v, want 0 and −4", m.Alignment, m.Uniformity)
	}
	// Opposite views: ‖ẑ₁−ẑ₂‖² = 4.
	AlignUniform([2][]float32{{1, 0}, {-2, 0}}, 1, 2, 1, nil, &m)
	if m.Alignment != 4 || m.Uniformity != 0 {
		t.Errorf("alignment %v uniformity %v, want 4 and 0", m.Alignment, m.Uniformity)
	}
}

func TestStageStopsOnNonFiniteLoss(t *testing.T) {
	nan := float32(math.NaN())
	for _, typ := range []string{TypeInfoNCE, TypeNTXent, TypeSupCon, TypeCrossEntropy} {
		t.Run(typ, func(t *testing.T) {
			l, err := New(Config{Type: typ})
			if err != nil {
				t.Fatal(err)
			}
			e := &pipeline.Encoded{Batch: &pipeline.Batch{Valid: 2, Labels: []int64{0, 1}}, N: 2, D: 2,
				Z: [2][]float32{{1, 0, nan, 1}, {1, 0, 0, 1}}, Queue: []float32{1, 0, 0, 1, 1, 1}, K: 3,
				Metrics: pipeline.StepMetrics{Step: 41, Epoch: 1}}
			if typ == TypeCrossEntropy {
				e.Z[1] = nil // one view: a classifier's logits
			}
			src := pipeline.StageFunc(func(ctx context.Context, _ *pipeline.Inbox, out *pipeline.Outbox) error { return out.Send(ctx, e) })
			err = pipeline.New(pipeline.Options{}).Add("src", src).Add("loss", Stage(l)).Run(context.Background())
			if err == nil || !strings.Contains(err.Error(), "step 41") || !strings.Contains(err.Error(), "NaN") {
				t.Errorf("Run = %v, want an error naming step 41 and NaN", err)
			}
			// A loss without a temperature is not told to raise it.
			if hasT := strings.Contains(fmt.Sprint(err), "temperature"); hasT != (typ != TypeCrossEntropy) {
				t.Errorf("Run = %v: mentions the temperature: %v", err, hasT)
			}
		})
	}
}

// With one view (Z[1] empty, a classifier's logits) the stage reports the
// loss and the batch's top-1, and no cosines, alignment or uniformity.
func TestStageOneView(t *testing.T) {
	l, err := New(Config{Type: TypeCrossEntropy})
	if err != nil {
		t.Fatal(err)
	}
	// Three samples of three classes, the third padding: sample 0 is
	// predicted right, sample 1 wrong.
	e := &pipeline.Encoded{Batch: &pipeline.Batch{Valid: 2, Labels: []int64{0, 2, -1}}, N: 3, D: 3,
		Z:       [2][]float32{{3, 1, 0, 0, 2, 1, 9, 9, 9}},
		Metrics: pipeline.StepMetrics{Step: 7}}
	var got *pipeline.Encoded
	src := pipeline.StageFunc(func(ctx context.Context, _ *pipeline.Inbox, out *pipeline.Outbox) error { return out.Send(ctx, e) })
	sink := pipeline.StageFunc(func(ctx context.Context, in *pipeline.Inbox, _ *pipeline.Outbox) error {
		return pipeline.Each(ctx, in, "sink", func(e *pipeline.Encoded) error { got = e; return nil })
	})
	if err := pipeline.New(pipeline.Options{}).Add("src", src).Add("loss", Stage(l)).Add("sink", sink).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	m := got.Metrics
	lse := func(a, b, c float64) float64 { return math.Log(math.Exp(a) + math.Exp(b) + math.Exp(c)) }
	want := (lse(3, 1, 0) - 3 + lse(0, 2, 1) - 1) / 2
	if math.Abs(m.Loss-want) > 1e-12 || m.Accuracy != 0.5 {
		t.Errorf("loss %v, accuracy %v; want %v and 0.5", m.Loss, m.Accuracy, want)
	}
	if m.PosCos != 0 || m.NegCos != 0 || m.Alignment != 0 || m.Uniformity != 0 {
		t.Errorf("one view: cosines %v %v, alignment %v, uniformity %v; want 0", m.PosCos, m.NegCos, m.Alignment, m.Uniformity)
	}
	if len(got.Grad[0]) != 9 || len(got.Grad[1]) != 0 {
		t.Errorf("gradients of %d and %d values, want 9 and 0", len(got.Grad[0]), len(got.Grad[1]))
	}
}
