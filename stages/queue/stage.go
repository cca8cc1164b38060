package queue

import (
	"context"
	"fmt"
	"math"

	"github.com/contrastream/contrastream/pipeline"
)

// Stage is MoCo's queue stage: it hands each *pipeline.Encoded the queue's
// keys as negatives (e.Queue, e.K) and arranges, through e.AfterStep, that
// once the optimizer has stepped the batch's keys (e.Z[1], L2-normalised;
// padding left out) enter the queue, replacing the oldest. The loss thus
// sees the keys of earlier batches only, as in MoCo.
func (q *Queue) Stage() pipeline.Stage {
	var keys []float32
	return pipeline.StageFunc(func(ctx context.Context, in *pipeline.Inbox, out *pipeline.Outbox) error {
		return pipeline.Each(ctx, in, "queue", func(e *pipeline.Encoded) error {
			if e.D != q.d {
				return fmt.Errorf("queue: keys of dimension %d; the queue holds %d (set queue.dim)", e.D, q.d)
			}
			e.Queue, e.K = q.Keys(), q.k
			e.AfterStep = append(e.AfterStep, func() error {
				valid := e.Batch.Valid
				if valid <= 0 || valid > e.N {
					valid = e.N
				}
				keys = normaliseRows(keys[:0], e.Z[1][:valid*e.D], e.D)
				return q.Push(keys)
			})
			return out.Send(ctx, e)
		})
	})
}

// normaliseRows appends to dst the rows of src (of length d) scaled to unit
// length.
func normaliseRows(dst, src []float32, d int) []float32 {
	for i := 0; i < len(src); i += d {
		row := src[i : i+d]
		var ss float64
		for _, x := range row {
			ss += float64(x) * float64(x)
		}
		inv := 1 / math.Max(math.Sqrt(ss), 1e-12)
		for _, x := range row {
			dst = append(dst, float32(float64(x)*inv))
		}
	}
	return dst
}
