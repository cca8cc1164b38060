package flows

import (
	"context"
	"errors"
	"fmt"
	"image"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sinks"
	"github.com/contrastream/contrastream/sources"
	"github.com/contrastream/contrastream/stages/augment"
)

// PreviewRow is one sample of a preview: the decoded original and its two
// augmented views, turned back into pictures.
type PreviewRow struct {
	Index  int64
	Label  int64
	Images [3]image.Image // original, view 1, view 2
}

// Preview augments the first n samples that spec's source streams (in the
// flow's shuffled order, epoch 0) with spec's augment stage, exactly as
// training would, and returns each beside its two views, so that a user can
// see what an augmentation config does. Bad samples are skipped.
func Preview(ctx context.Context, spec *pipeline.Spec, n int) ([]PreviewRow, error) {
	src, ok := spec.Source.Config.(*DatasetConfig)
	if !ok || spec.Source.Kind != "dataset" {
		return nil, fmt.Errorf("preview: flow %q has no dataset source", spec.Name)
	}
	var acfg *augment.Config
	for _, s := range spec.Stages {
		if c, ok := s.Config.(*augment.Config); ok {
			acfg = c
			break
		}
	}
	if acfg == nil {
		return nil, fmt.Errorf("preview: flow %q has no augment stage", spec.Name)
	}
	aug, err := augment.New(*acfg)
	if err != nil {
		return nil, err
	}
	ds, err := OpenDataset(src.Config)
	if err != nil {
		return nil, err
	}
	defer ds.Close()
	mean, std := aug.Normalization()
	var rows []PreviewRow
	errEnough := errors.New("enough")
	err = sources.Each(ctx, ds, src.stream(spec.Seed, 1), func(s pipeline.Sample) error {
		img, err := sources.Decode(s, acfg.MaxPixels) // the limit the augment stage applies
		if pipeline.IsSkip(err) {
			return nil // a bad sample, as training would skip it
		} else if err != nil {
			return err
		}
		s.Image = img
		p, err := aug.Pair(s, spec.Seed)
		if pipeline.IsSkip(err) {
			return nil
		} else if err != nil {
			return err
		}
		row := PreviewRow{Index: s.Index, Label: s.Label, Images: [3]image.Image{img}}
		for v := range 2 {
			if row.Images[v+1], err = sinks.ViewImage(p.Views[v], mean, std); err != nil {
				return err
			}
		}
		rows = append(rows, row)
		if len(rows) == n {
			return errEnough
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("preview: no sample of %s could be decoded", ds.Name())
	}
	return rows, nil
}
