package flows

import (
	"strings"

	"github.com/contrastream/contrastream/sources"
	"github.com/contrastream/contrastream/sources/builtin"
)

// The paths of the built-in dataset's splits; OpenDataset and every flow's
// dataset source take them where they take a file.
const (
	BuiltinTrain = "builtin:train"
	BuiltinTest  = "builtin:test"
)

// IsBuiltin reports whether path names a split of the built-in dataset.
func IsBuiltin(path string) bool { return strings.HasPrefix(path, "builtin:") }

// OpenDataset opens the dataset cfg describes, or a split of the built-in
// dataset when cfg.Path is "builtin:train" or "builtin:test" (or when no
// path is given: the training split).
func OpenDataset(cfg sources.Config) (sources.Dataset, error) {
	if cfg.Path == "" && len(cfg.Paths) == 0 {
		cfg.Path = BuiltinTrain
	}
	if IsBuiltin(cfg.Path) && len(cfg.Paths) == 0 {
		return builtin.Open(strings.TrimPrefix(cfg.Path, "builtin:"))
	}
	return sources.Open(cfg)
}
