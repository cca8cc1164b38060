package builtin

import (
	_ "embed"
	"fmt"

	"github.com/contrastream/contrastream/sources"
)

//go:embed data/train.parquet
var train []byte

//go:embed data/test.parquet
var test []byte

// Splits are the names Open takes.
var Splits = []string{"train", "test"}

// ClassNames are Fashion-MNIST's labels 0 to 9.
var ClassNames = []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}

// Open opens a split of the built-in dataset, "train" or "test", reading
// the embedded bytes in place.
func Open(split string) (sources.Dataset, error) {
	switch split {
	case "train":
		return sources.OpenParquetBytes("builtin:train", train, "", "")
	case "test":
		return sources.OpenParquetBytes("builtin:test", test, "", "")
	}
	return nil, fmt.Errorf("builtin: unknown split %q (have train, test)", split)
}
