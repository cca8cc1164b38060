package flows

import (
	"context"
	"errors"
	"fmt"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sources"
	"github.com/contrastream/contrastream/stages/augment"
	"github.com/contrastream/contrastream/stages/collate"
)

// Plan is what a flow will stream, known before it runs.
type Plan struct {
	// EpochLen is the number of samples one epoch of the source streams
	// (of its shard, when sharded). Bad samples skipped later count here.
	EpochLen int64
	// Epochs is the spec's number of epochs.
	Epochs int
	// Labeled reports whether the source's samples carry labels.
	Labeled bool
	// BatchSize is the collate stage's batch size; 0 when the flow does
	// not batch.
	BatchSize int
	// Batches is the number of batches an epoch makes (fewer if samples
	// are skipped).
	Batches int64
	// C, H and W are the shape of the augmented views (from the first
	// sample that decodes), what an encoder must take; 0 when the flow
	// does not augment.
	C, H, W int
	// Memory is the estimate of the run's peak memory (EstimateMemory).
	Memory MemoryEstimate
}

// Steps is the number of training steps of the whole run.
func (p Plan) Steps() int64 { return p.Batches * int64(p.Epochs) }

// PlanOf opens spec's source to count what the flow will stream, and
// refuses, saying what to change, a flow that would make no batch at all
// (an epoch shorter than the batch size, with partial batches dropped), a
// flow whose estimated peak memory (Plan.Memory) is over its limit (the
// spec's max_memory, else DefaultMemoryFraction of MachineMemory; the
// error matches ErrTooMuchMemory), and a spec whose normalised YAML, which
// every checkpoint records, is over pipeline.MaxSpecBytes.
func PlanOf(spec *pipeline.Spec) (Plan, error) {
	ctx := context.Background()
	if y, err := spec.YAML(); err == nil && len(y) > pipeline.MaxSpecBytes {
		return Plan{}, fmt.Errorf("flow %q: its spec, with every default written out as a checkpoint records it, is %d bytes, over the limit of %d (pipeline.MaxSpecBytes): a resumed run could not read it back", spec.Name, len(y), pipeline.MaxSpecBytes)
	}
	src, ok := spec.Source.Config.(*DatasetConfig)
	if !ok {
		return Plan{}, fmt.Errorf("flow %q has no dataset source", spec.Name)
	}
	ds, err := OpenDataset(src.Config)
	if err != nil {
		return Plan{}, err
	}
	defer ds.Close()
	p := Plan{EpochLen: src.stream(spec.Seed, spec.Epochs).EpochLen(ds), Epochs: spec.Epochs, Labeled: ds.Labeled()}
	if err := probeViews(ctx, spec, ds, &p); err != nil {
		return p, err
	}
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
	if p.Memory, err = EstimateMemory(spec, p); err != nil {
		return p, err
	}
	return p, checkMemory(spec, p)
}

// errFound ends a scan of the dataset early.
var errFound = errors.New("found")

// probeViews sets p's view shape by augmenting the first sample of ds that
// decodes, with spec's augment stage.
func probeViews(ctx context.Context, spec *pipeline.Spec, ds sources.Dataset, p *Plan) error {
	var acfg *augment.Config
	for _, s := range spec.Stages {
		if c, ok := s.Config.(*augment.Config); ok {
			acfg = c
		}
	}
	if acfg == nil {
		return nil
	}
	aug, err := augment.New(*acfg)
	if err != nil {
		return err
	}
	err = sources.Each(ctx, ds, sources.StreamConfig{}, func(s pipeline.Sample) error {
		pair, err := aug.Pair(s, spec.Seed)
		if pipeline.IsSkip(err) {
			return nil
		} else if err != nil {
			return err
		}
		v := pair.Views[0]
		p.C, p.H, p.W = v.C, v.H, v.W
		return errFound
	})
	if errors.Is(err, errFound) {
		return nil
	}
	if err == nil {
		err = fmt.Errorf("%s: no sample decodes", ds.Name())
	}
	return err
}
