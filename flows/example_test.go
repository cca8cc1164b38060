package flows_test

import (
	"context"
	"fmt"
	"log"

	"github.com/contrastream/contrastream/flows"
	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sources"
	"github.com/contrastream/contrastream/stages/augment"
	"github.com/contrastream/contrastream/stages/collate"
)

// The data flow of flows/data.yaml, assembled in Go from the stages'
// constructors: read the built-in test split, make two views of every
// image, batch them, and count the batches.
func Example() {
	ds, err := flows.OpenDataset(sources.Config{Path: flows.BuiltinTest})
	if err != nil {
		log.Fatal(err)
	}
	defer ds.Close()
	aug, err := augment.New(augment.Config{Workers: 2}) // the zero config is the reference recipe
	if err != nil {
		log.Fatal(err)
	}
	col, err := collate.New(collate.Config{BatchSize: 256, Last: "drop"})
	if err != nil {
		log.Fatal(err)
	}
	var batches, pairs int
	count := pipeline.StageFunc(func(ctx context.Context, in *pipeline.Inbox, _ *pipeline.Outbox) error {
		for {
			v, ok, err := in.Recv(ctx)
			if !ok || err != nil {
				return err
			}
			batches++
			pairs += v.(*pipeline.Batch).Valid
		}
	})
	const seed = 1
	f := pipeline.New(pipeline.Options{MaxBadSamples: 100}).
		Add("dataset", sources.NewStage(ds, sources.StreamConfig{Seed: seed, Epochs: 1, Shuffle: true})).
		Add("augment", aug.Stage(seed)).
		Add("collate", col.Stage()).
		Add("count", count)
	if err := f.Run(context.Background()); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d batches, %d pairs (the last 208 samples dropped)\n", batches, pairs)
	// Output: 7 batches, 1792 pairs (the last 208 samples dropped)
}

// A prebuilt flow, loaded with an override as the CLI's --set does, and run.
func ExampleLoad() {
	spec, err := flows.Load("data", []string{"source.path=builtin:test", "stages.collate.batch_size=500"})
	if err != nil {
		log.Fatal(err)
	}
	f, err := flows.Build(spec, pipeline.Options{})
	if err != nil {
		log.Fatal(err)
	}
	if err := f.Run(context.Background()); err != nil {
		log.Fatal(err)
	}
	for _, m := range f.Metrics() {
		fmt.Println(m.Name, m.Out)
	}
	// Output:
	// dataset 2000
	// augment 2000
	// collate 4
	// discard 0
}
