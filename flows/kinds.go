package flows

import (
	"context"
	"fmt"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sources"
	"github.com/contrastream/contrastream/stages/augment"
	"github.com/contrastream/contrastream/stages/collate"
)

// DatasetConfig is the config of the "dataset" source kind: which dataset
// to read and how to stream it. The flow's seed and epochs apply.
type DatasetConfig struct {
	// Config says which dataset: path (a file, folder or glob, or
	// "builtin:train" / "builtin:test"), format, columns. Default path:
	// builtin:train. Its max_pixels limits IDX images when the file is
	// opened and the size of the files an image folder reads; encoded
	// images are decoded, and limited, by the augment stage's max_pixels.
	sources.Config `yaml:",inline"`
	// Order is "shuffle" (a new seeded permutation each epoch) or
	// "sequential" (Index order). Default "shuffle".
	Order string `yaml:"order"`
	// ShuffleRows is how many rows are mixed together when shuffling a
	// streamed dataset; see sources.StreamConfig. Default 1024.
	ShuffleRows int `yaml:"shuffle_rows"`
	// Shard and Shards take shard i of n (Index % n == i); see
	// sources.StreamConfig.Shard for what that costs. Default 0 of 1.
	Shard  int `yaml:"shard"`
	Shards int `yaml:"shards"`
}

// Validate checks the fields that need no file.
func (c DatasetConfig) Validate() error {
	switch c.Order {
	case "", "shuffle", "sequential":
	default:
		return &pipeline.FieldError{Field: "order", Msg: fmt.Sprintf("%q is not shuffle or sequential", c.Order)}
	}
	if c.Path == "" && len(c.Paths) == 0 {
		c.Path = BuiltinTrain
	}
	if !IsBuiltin(c.Path) {
		if err := c.Config.Validate(); err != nil {
			return err
		}
	}
	return c.stream(0, 1).Validate()
}

func (c DatasetConfig) stream(seed int64, epochs int) sources.StreamConfig {
	return sources.StreamConfig{Seed: seed, Epochs: epochs, Shuffle: c.Order != "sequential",
		ShuffleRows: c.ShuffleRows, Shard: c.Shard, Shards: c.Shards}
}

// discardConfig is the config of the "discard" sink: none.
type discardConfig struct{}

// Register adds contrastream's stage kinds to reg. The package registers
// them in pipeline.DefaultRegistry when it is imported. A training flow
// is built by Prepare with these kinds bound to its own typed parts (see
// parts); built from reg, a training kind reports that it needs Prepare.
func Register(reg *pipeline.Registry) error {
	for _, k := range flowKinds(nil) {
		if err := reg.Register(k); err != nil {
			return err
		}
	}
	return nil
}

// flowKinds are the kinds of this package, bound to t (nil: unbound).
func flowKinds(t *parts) []pipeline.Kind {
	var kinds []pipeline.Kind
	for _, k := range []pipeline.Kind{
		{
			Name: "dataset", Role: pipeline.RoleSource, Produces: "sample",
			Doc:       "reads a dataset (Parquet, Arrow IPC, image folder, IDX, or the built-in one) as samples",
			NewConfig: func() any { return &DatasetConfig{} },
			Build: func(cfg any, env pipeline.BuildEnv) (pipeline.Stage, error) {
				c := cfg.(*DatasetConfig)
				ds, err := OpenDataset(c.Config)
				if err != nil {
					return nil, err
				}
				sc := c.stream(env.Seed, env.Epochs)
				if ck := t.resumed(); ck != nil {
					sc.StartEpoch, sc.Offset = ck.Info.Epoch, ck.Info.Offset
				}
				return closing{sources.NewStage(ds, sc), ds}, nil
			},
		},
		{
			Name: "augment", Role: pipeline.RoleStage, Accepts: "sample", Produces: "pair",
			Doc:       "decodes each sample and makes two random views (crop, flip, rotation, jitter, grayscale, blur, solarize), as a worker pool",
			NewConfig: func() any { return &augment.Config{} },
			Build: func(cfg any, env pipeline.BuildEnv) (pipeline.Stage, error) {
				a, err := augment.New(*cfg.(*augment.Config))
				if err != nil {
					return nil, err
				}
				return a.Stage(env.Seed), nil
			},
		},
		{
			Name: "collate", Role: pipeline.RoleStage, Accepts: "pair", Produces: "batch",
			Doc:       "groups pairs into fixed-size batches; the last partial batch of an epoch is dropped or padded",
			NewConfig: func() any { return &collate.Config{} },
			Build: func(cfg any, env pipeline.BuildEnv) (pipeline.Stage, error) {
				c, err := collate.New(*cfg.(*collate.Config))
				if err != nil {
					return nil, err
				}
				return c.Stage(), nil
			},
		},
		{
			Name: "discard", Role: pipeline.RoleSink, Accepts: pipeline.AnyElement,
			Doc:       "consumes and counts what reaches it (to measure the stages before it)",
			NewConfig: func() any { return &discardConfig{} },
			Build: func(any, pipeline.BuildEnv) (pipeline.Stage, error) {
				return pipeline.StageFunc(discard), nil
			},
		},
	} {
		kinds = append(kinds, k)
	}
	return append(append(kinds, trainingKinds(t)...), repeatKind())
}

func init() {
	if err := Register(pipeline.DefaultRegistry); err != nil {
		panic(err)
	}
}

func discard(ctx context.Context, in *pipeline.Inbox, _ *pipeline.Outbox) error {
	return pipeline.Each(ctx, in, "discard", func(any) error { return nil })
}

// closing closes a dataset when its stage ends.
type closing struct {
	pipeline.Stage
	ds sources.Dataset
}

func (c closing) Run(ctx context.Context, in *pipeline.Inbox, out *pipeline.Outbox) error {
	err := c.Stage.Run(ctx, in, out)
	if cerr := c.ds.Close(); err == nil {
		err = cerr
	}
	return err
}
