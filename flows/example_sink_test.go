package flows_test

import (
	"context"
	"fmt"
	"log"
	"math"
	"slices"

	"github.com/contrastream/contrastream/flows"
	"github.com/contrastream/contrastream/pipeline"
)

// normSink is a sink of the user's: it receives every step's record, as
// the built-in metrics, checkpoint and knn sinks do, and asks for the
// training state (a read-only copy) every other step.
type normSink struct{ every int64 }

// WantsState makes normSink a pipeline.StateWanter: the optimize stage
// hands it a copy of the state after the steps it wants.
func (s normSink) WantsState(steps int64) bool { return steps%s.every == 0 }

// Run prints the L2 norm of the encoder's weights in the states it gets.
func (s normSink) Run(ctx context.Context, in *pipeline.Inbox, _ *pipeline.Outbox) error {
	return pipeline.Each(ctx, in, "norms", func(m pipeline.StepMetrics) error {
		if m.State == nil {
			return nil
		}
		names := make([]string, 0, len(m.State.Model))
		for name := range m.State.Model {
			names = append(names, name)
		}
		slices.Sort(names) // a fixed order: the same sum every run
		var sq float64
		for _, name := range names {
			for _, v := range m.State.Model[name].Data {
				sq += float64(v) * float64(v)
			}
		}
		fmt.Printf("after step %d: %d tensors, |θ| %.1f\n", m.State.Steps, len(names), math.Sqrt(sq))
		return nil
	})
}

type normConfig struct {
	// Every is how many steps apart the norms are printed. Default 2.
	Every int64 `yaml:"every"`
}

func init() {
	pipeline.Register(pipeline.Kind{
		Name: "norms", Role: pipeline.RoleSink, Accepts: "step",
		Doc:       "prints the norm of the encoder's weights every few steps",
		NewConfig: func() any { return &normConfig{} },
		Build: func(cfg any, _ pipeline.BuildEnv) (pipeline.Stage, error) {
			every := cfg.(*normConfig).Every
			if every == 0 {
				every = 2
			}
			return normSink{every: every}, nil
		},
	})
}

// A sink written in Go takes its place in a flow's YAML like the built-in
// ones: here the moco flow, small, with the metrics, checkpoint and knn
// sinks replaced by the user's norms sink.
func Example_sink() {
	spec, err := flows.Load("moco", []string{
		"source.path=builtin:test", "source.shards=40", "epochs=1",
		"stages.augment.size=16", "stages.collate.batch_size=8", "stages.encode.hidden=16", "stages.encode.out=16",
		"stages.queue.size=64", "stages.queue.dim=16",
		"sinks=[{kind: norms, every: 2}]",
	})
	if err != nil {
		log.Fatal(err)
	}
	job, err := flows.Prepare(spec, pipeline.Options{}, flows.JobOptions{})
	if err != nil {
		log.Fatal(err)
	}
	if err := job.Run(context.Background()); err != nil {
		log.Fatal(err)
	}
	// Output:
	// after step 2: 19 tensors, |θ| 21.7
	// after step 4: 19 tensors, |θ| 20.8
	// after step 6: 19 tensors, |θ| 20.2
}
