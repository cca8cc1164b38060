package flows_test

import (
	"context"
	"fmt"
	"log"
	"math"
	"math/rand/v2"

	"github.com/contrastream/contrastream/flows"
	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sources"
	"github.com/contrastream/contrastream/stages/augment"
	"github.com/contrastream/contrastream/stages/collate"
	"github.com/contrastream/contrastream/stages/encode"
	"github.com/contrastream/contrastream/stages/loss"
	"github.com/contrastream/contrastream/stages/optim"
	"github.com/contrastream/contrastream/stages/queue"
)

// MoCo assembled in Go from the stages' constructors, as flows/moco.yaml
// assembles it from YAML (here small: 40 images, batches of 8, 16×16
// views, a narrow head and a queue of 64 keys, so that it runs in a test).
func Example_moco() {
	const seed, batch, epochs = 1, 8, 2
	ds, err := flows.OpenDataset(sources.Config{Path: flows.BuiltinTest})
	if err != nil {
		log.Fatal(err)
	}
	defer ds.Close()
	stream := sources.StreamConfig{Seed: seed, Epochs: epochs, Shuffle: true, Shard: 0, Shards: 50} // 40 samples
	aug, err := augment.New(augment.Config{Size: 16, Workers: 2})
	if err != nil {
		log.Fatal(err)
	}
	col, err := collate.New(collate.Config{BatchSize: batch})
	if err != nil {
		log.Fatal(err)
	}
	w, err := encode.NewWeights(encode.Config{Hidden: 16, Out: 16}, encode.Input{C: 1, H: 16, W: 16}, rand.New(rand.NewPCG(seed, 1)))
	if err != nil {
		log.Fatal(err)
	}
	pool, err := encode.NewPool(w, encode.PoolConfig{Batch: batch, KeyEncoder: true}) // a momentum (key) encoder for view 2
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	q, err := queue.New(queue.Config{Size: 64, Dim: 16}, rand.NewPCG(seed, 2))
	if err != nil {
		log.Fatal(err)
	}
	l, err := loss.New(loss.Config{Type: loss.TypeInfoNCE, Temperature: new(0.2)})
	if err != nil {
		log.Fatal(err)
	}
	ocfg := optim.Config{LR: optim.Float(0.06)}
	opt, err := optim.New(ocfg, pool.Params())
	if err != nil {
		log.Fatal(err)
	}
	steps := int(stream.EpochLen(ds)) / batch * epochs
	sched, err := ocfg.NewSchedule(steps)
	if err != nil {
		log.Fatal(err)
	}
	step := optim.Stage(opt, sched, optim.StepHooks{
		Backward: pool.Backward,
		Release:  pool.Release,
		After: func(int64) (float64, error) { // ξ ← m·ξ + (1−m)·θ
			return 0.99, queue.MomentumUpdateParams(pool.KeyParams(), pool.Params(), 0.99)
		},
	})
	var losses []float64
	report := pipeline.StageFunc(func(ctx context.Context, in *pipeline.Inbox, _ *pipeline.Outbox) error {
		for {
			v, ok, err := in.Recv(ctx)
			if !ok || err != nil {
				return err
			}
			losses = append(losses, v.(pipeline.StepMetrics).Loss)
		}
	})
	f := pipeline.New(pipeline.Options{}).
		Add("dataset", sources.NewStage(ds, stream)).
		Add("augment", aug.Stage(seed)).
		Add("collate", col.Stage()).
		Add("encode", pool.Stage()).
		Add("queue", q.Stage()).
		Add("loss", loss.Stage(l)).
		Add("optimize", step).
		Add("report", report)
	if err := f.Run(context.Background()); err != nil {
		log.Fatal(err)
	}
	finite := true
	for _, x := range losses {
		finite = finite && !math.IsNaN(x) && !math.IsInf(x, 0)
	}
	fmt.Printf("%d steps, every loss finite: %v, queue at %d of %d\n", len(losses), finite, q.Ptr(), q.Size())
	// Output: 10 steps, every loss finite: true, queue at 16 of 64
}
