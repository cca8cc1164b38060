package flows

import (
	"fmt"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/stages/collate"
)

// Plan is what a flow will stream, known before it runs.
type Plan struct {
	// EpochLen is the number of samples one epoch of the source streams
	// (of its shard, when sharded). Bad samples skipped later count here.
	EpochLen int64
	// Epochs is the spec's number of epochs.
	Epochs int
	// BatchSize is the collate stage's batch size; 0 when the flow does
	// not batch.
	BatchSize int
	// Batches is the number of batches an epoch makes (fewer if samples
	// are skipped).
	Batches int64
}

// PlanOf opens spec's source to count what the flow will stream, and
// refuses a flow that would make no batch at all (an epoch shorter than the
// batch size, with partial batches dropped), saying what to change.
func PlanOf(spec *pipeline.Spec) (Plan, error) {
	src, ok := spec.Source.Config.(*DatasetConfig)
	if !ok {
		return Plan{}, fmt.Errorf("flow %q has no dataset source", spec.Name)
	}
	ds, err := OpenDataset(src.Config)
	if err != nil {
		return Plan{}, err
	}
	defer ds.Close()
	p := Plan{EpochLen: src.stream(spec.Seed, spec.Epochs).EpochLen(ds), Epochs: spec.Epochs}
	for _, st := range spec.Stages {
		c, ok := st.Config.(*collate.Config)
		if !ok {
			continue
		}
		p.BatchSize = c.BatchSize
		if p.BatchSize == 0 {
			p.BatchSize = collate.DefaultBatchSize
		}
		p.Batches = p.EpochLen / int64(p.BatchSize)
		if c.Last == collate.Pad && p.EpochLen%int64(p.BatchSize) != 0 {
			p.Batches++
		}
		if p.Batches == 0 {
			return p, fmt.Errorf("stages.%s: %s streams %d samples an epoch, fewer than batch_size %d, and last: drop keeps no partial batch: no batch would be made; lower batch_size or set last: pad",
				st.Name, ds.Name(), p.EpochLen, p.BatchSize)
		}
	}
	return p, nil
}
