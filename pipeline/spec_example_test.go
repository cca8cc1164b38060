package pipeline_test

import (
	"context"
	"fmt"

	"github.com/contrastream/contrastream/pipeline"
)

// BatchConfig is the config of the example's collate kind.
type BatchConfig struct {
	// Size is the number of samples in a batch. Default 256.
	Size int `yaml:"size"`
}

func (c *BatchConfig) Validate() error {
	if c.Size < 0 {
		return &pipeline.FieldError{Field: "size", Msg: fmt.Sprintf("must be ≥ 0, got %d", c.Size)}
	}
	return nil
}

func ExampleParseSpec() {
	nop := func(any, pipeline.BuildEnv) (pipeline.Stage, error) {
		return pipeline.StageFunc(func(context.Context, *pipeline.Inbox, *pipeline.Outbox) error { return nil }), nil
	}
	reg := pipeline.NewRegistry()
	for _, k := range []pipeline.Kind{
		{Name: "numbers", Role: pipeline.RoleSource, Produces: "sample", Build: nop},
		{Name: "collate", Role: pipeline.RoleStage, Accepts: "sample", Produces: "batch",
			NewConfig: func() any { return new(BatchConfig) }, Build: nop},
		{Name: "print", Role: pipeline.RoleSink, Accepts: pipeline.AnyElement, Build: nop},
	} {
		if err := reg.Register(k); err != nil {
			panic(err)
		}
	}

	flow := []byte(`
seed: 7
source: {kind: numbers}
stages:
  - kind: collate
    size: 32
sinks: [{kind: print}]
`)
	spec, err := pipeline.ParseSpec(flow, "flow.yaml", reg, []string{"collate.size=64"})
	if err != nil {
		panic(err)
	}
	fmt.Println("seed", spec.Seed, "epochs", spec.Epochs, "batch size", spec.Stages[0].Config.(*BatchConfig).Size)
	stages, err := spec.Build(reg, spec.Env())
	if err != nil {
		panic(err)
	}
	for _, s := range stages {
		fmt.Println(s.Role, s.Name)
	}

	_, err = pipeline.ParseSpec(flow, "flow.yaml", reg, []string{"stages.collate.size=-1"})
	fmt.Println(err)
	_, err = pipeline.ParseSpec([]byte("source: {kind: numbers}\nstages: [{kind: colate}]"), "flow.yaml", reg, nil)
	fmt.Println(err)
	// Output:
	// seed 7 epochs 1 batch size 64
	// source numbers
	// stage collate
	// sink print
	// --set stages.collate.size=-1: stages[0] (collate).size: must be ≥ 0, got -1
	// flow.yaml:2: stages[0].kind: unknown stage kind "colate" (known: collate); did you mean "collate"?
}
