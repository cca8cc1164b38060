package augment

import (
	"context"

	"github.com/contrastream/contrastream/pipeline"
)

// stageChunk is the most samples a worker of the stage takes at once. A
// 28×28 pair takes about 12 µs, and each hand-off between the pool's
// goroutines a few: one sample at a time, a second worker added 6%
// (BenchmarkAugment).
const stageChunk = 16

// Stage returns the augmentation stage: a pool of Config.Workers goroutines
// that turns each pipeline.Sample into a pipeline.Pair, in input order:
//
//	in  -- s1 -- s2 -- s3 ----- s4 --
//	[ decode + two views, on Workers ]
//	out ----- p1 -- p2 -- p3 ----- p4    (p = Pair{Views: [view 0, view 1]})
//
// A sample that cannot be decoded (or is empty, or too large) is skipped
// and counted; the others keep their order. Each worker owns its scratch
// buffers; every Pair's views come from pipeline.ViewData and are owned
// downstream (collate recycles them once copied).
// The output is the same, bit for bit, for any number of workers.
func (a *Augmenter) Stage(seed int64) pipeline.Stage {
	return pipeline.MapWorkers(func(int) func(context.Context, pipeline.Sample) (pipeline.Pair, error) {
		sc := new(scratch)
		return func(_ context.Context, s pipeline.Sample) (pipeline.Pair, error) {
			return a.pair(s, seed, sc)
		}
	}, pipeline.PoolOptions{Workers: a.p.workers, Chunk: stageChunk})
}
