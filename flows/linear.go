package flows

import (
	"context"

	"github.com/contrastream/contrastream/sources"
	"github.com/contrastream/contrastream/stages/augment"
	"github.com/contrastream/contrastream/stages/encode"
	"github.com/contrastream/contrastream/stages/eval"
)

// LinearConfig says what Linear evaluates.
type LinearConfig struct {
	// Train and Test are the datasets the classifier is trained and
	// tested on. Default builtin:train and builtin:test.
	Train, Test sources.Config
	// Linear is the probe's recipe (default: the reference's, see
	// eval.LinearConfig).
	Linear eval.LinearConfig
	// Progress, when set, is called with a phase ("train", "test") and the
	// number of samples encoded, and with phase "fit" (and 0) once the
	// classifier's training starts.
	Progress func(phase string, done int64)
}

// Linear evaluates the frozen encoder w by a linear probe: a softmax
// regression on the standardised features of the training split (eval
// mode, no augmentation), tested on the test split's. acfg is the flow's
// augment config (for the size and normalisation).
func Linear(ctx context.Context, w *encode.Weights, acfg augment.Config, cfg LinearConfig) (eval.LinearResult, error) {
	if err := cfg.Linear.Validate(); err != nil {
		return eval.LinearResult{}, err
	}
	feats, err := splitFeatures(ctx, w, acfg, "linear", [2]sources.Config{cfg.Train, cfg.Test}, cfg.Progress)
	if err != nil {
		return eval.LinearResult{}, err
	}
	if cfg.Progress != nil {
		cfg.Progress("fit", 0)
	}
	return eval.Linear(feats[0], feats[1], cfg.Linear)
}
