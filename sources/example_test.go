package sources_test

import (
	"context"
	"fmt"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sources"
)

func ExampleOpen() {
	ds, err := sources.Open(sources.Config{Path: "testdata/hf.parquet"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ds.Close()
	fmt.Println(ds.Name(), ds.Len(), "samples in", len(ds.Chunks()), "row groups, classes", sources.ClassNames(ds))
	err = sources.Each(context.Background(), ds, sources.StreamConfig{}, func(s pipeline.Sample) error {
		if s.Index < 2 {
			img, err := sources.Decode(s, 0)
			if err != nil {
				return err
			}
			fmt.Println(s.Origin, "label", s.Label, img.Bounds().Dx(), "×", img.Bounds().Dy())
		}
		return nil
	})
	fmt.Println(err)
	// Output:
	// hf.parquet 12 samples in 3 row groups, classes [circle square triangle]
	// testdata/hf.parquet row 0 label 0 8 × 6
	// testdata/hf.parquet row 1 label 1 8 × 6
	// <nil>
}

func ExampleEach() {
	ds, err := sources.Open(sources.Config{Path: "testdata/idx/images-idx3-ubyte.gz", Labels: "testdata/idx/labels-idx1-ubyte.gz"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ds.Close()
	cfg := sources.StreamConfig{Seed: 1, Epochs: 2, Shuffle: true, Shard: 0, Shards: 2}
	order := map[int][]int64{}
	err = sources.Each(context.Background(), ds, cfg, func(s pipeline.Sample) error {
		order[s.Epoch] = append(order[s.Epoch], s.Index)
		return nil
	})
	fmt.Println(cfg.EpochLen(ds), "samples per epoch:", order[0], order[1], err)
	// Output:
	// 6 samples per epoch: [2 4 6 0 10 8] [0 4 8 2 10 6] <nil>
}

func ExampleDecode() {
	s := pipeline.Sample{Encoded: []byte("not an image"), Origin: "train.parquet row 17"}
	_, err := sources.Decode(s, 0)
	fmt.Println(pipeline.IsSkip(err), err)
	// Output:
	// true train.parquet row 17: not a PNG or JPEG image (12 bytes starting "not an i")
}
