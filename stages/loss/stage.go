package loss

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/contrastream/contrastream/pipeline"
)

// Stage is the loss stage of a training flow: for each *pipeline.Encoded
// it computes the loss and dL/dZ (into e.Grad, buffers the stage owns and
// reuses: valid until the next element), the loss figures of e.Metrics,
// and passes e on. With two views: the loss, the mean positive and
// negative cosine, alignment and uniformity. With one (e.Z[1] empty: a
// classifier's logits, crossentropy), where cosines, alignment and
// uniformity mean nothing and stay 0: the loss and the batch's top-1
// (Metrics.Accuracy, the loss's Top1). A loss that is not finite stops the
// flow with an error naming the step, before the optimizer can take it.
func Stage(l Loss) pipeline.Stage {
	var out Outputs
	var zn []float32
	hint := "lower the learning rate"
	if _, tempered := l.(interface{ Temperature() float64 }); tempered {
		hint += ", or raise the temperature"
	}
	return pipeline.StageFunc(func(ctx context.Context, in *pipeline.Inbox, next *pipeline.Outbox) error {
		return pipeline.Each(ctx, in, "loss", func(e *pipeline.Encoded) error {
			b, start := e.Batch, time.Now()
			if err := l.Compute(Inputs{Z: e.Z, N: e.N, D: e.D, Labels: b.Labels, Valid: b.Valid, Queue: e.Queue, K: e.K}, &out); err != nil {
				return fmt.Errorf("step %d: %w", e.Metrics.Step, err)
			}
			if math.IsNaN(out.Loss) || math.IsInf(out.Loss, 0) {
				return fmt.Errorf("step %d (epoch %d): the loss is %v; training stopped before the optimizer took it (%s)",
					e.Metrics.Step, e.Metrics.Epoch, out.Loss, hint)
			}
			e.Grad = out.Grad
			m := &e.Metrics
			m.Loss, m.PosCos, m.NegCos = out.Loss, out.PosCos, out.NegCos
			if len(e.Z[1]) == 0 {
				m.Accuracy = out.Top1
			} else {
				zn = AlignUniform(e.Z, e.N, e.D, b.Valid, zn, m)
			}
			m.Seconds += time.Since(start).Seconds()
			return next.Send(ctx, e)
		})
	})
}

// AlignUniform sets m.Alignment, E‖ẑ₁−ẑ₂‖² over the valid samples' two
// views, and m.Uniformity, log E exp(−2‖ẑᵢ−ẑⱼ‖²) over distinct pairs of
// view 1 (Wang and Isola, 2020), ẑ being the L2-normalised embeddings. It
// returns its scratch buffer for reuse.
func AlignUniform(z [2][]float32, n, d, valid int, scratch []float32, m *pipeline.StepMetrics) []float32 {
	if valid <= 0 || valid > n {
		valid = n
	}
	if cap(scratch) < 2*valid*d {
		scratch = make([]float32, 2*valid*d)
	}
	zn := scratch[:2*valid*d]
	for v := range 2 {
		for i := range valid {
			row := z[v][i*d : (i+1)*d]
			var ss float64
			for _, x := range row {
				ss += float64(x) * float64(x)
			}
			inv := 1 / math.Max(math.Sqrt(ss), 1e-12)
			for j, x := range row {
				zn[(v*valid+i)*d+j] = float32(float64(x) * inv)
			}
		}
	}
	var align float64
	for i := range valid {
		align += sqDist(zn[i*d:(i+1)*d], zn[(valid+i)*d:(valid+i+1)*d])
	}
	m.Alignment = align / float64(valid)
	if valid < 2 {
		m.Uniformity = 0
		return scratch
	}
	var sum float64
	for i := range valid {
		for j := i + 1; j < valid; j++ {
			sum += math.Exp(-2 * sqDist(zn[i*d:(i+1)*d], zn[j*d:(j+1)*d]))
		}
	}
	m.Uniformity = math.Log(sum / float64(valid*(valid-1)/2))
	return scratch
}

func sqDist(a, b []float32) float64 {
	var s float64
	for i := range a {
		d := float64(a[i] - b[i])
		s += d * d
	}
	return s
}
