package loss

import (
	"context"
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
	for _, typ := range []string{TypeInfoNCE, TypeNTXent, TypeSupCon} {
		t.Run(typ, func(t *testing.T) {
			l, err := New(Config{Type: typ})
			if err != nil {
				t.Fatal(err)
			}
			e := &pipeline.Encoded{Batch: &pipeline.Batch{Valid: 2, Labels: []int64{0, 1}}, N: 2, D: 2,
				Z: [2][]float32{{1, 0, nan, 1}, {1, 0, 0, 1}}, Queue: []float32{1, 0, 0, 1, 1, 1}, K: 3,
				Metrics: pipeline.StepMetrics{Step: 41, Epoch: 1}}
			src := pipeline.StageFunc(func(ctx context.Context, _ *pipeline.Inbox, out *pipeline.Outbox) error { return out.Send(ctx, e) })
			err = pipeline.New(pipeline.Options{}).Add("src", src).Add("loss", Stage(l)).Run(context.Background())
			if err == nil || !strings.Contains(err.Error(), "step 41") || !strings.Contains(err.Error(), "NaN") {
				t.Errorf("Run = %v, want an error naming step 41 and NaN", err)
			}
		})
	}
}
