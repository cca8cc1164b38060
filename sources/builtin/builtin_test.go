package builtin_test

import (
	"context"
	"slices"
	"testing"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sources"
	"github.com/contrastream/contrastream/sources/builtin"
)

func TestSplits(t *testing.T) {
	for _, tc := range []struct {
		split    string
		perClass int64
	}{{"train", 1000}, {"test", 200}} {
		t.Run(tc.split, func(t *testing.T) {
			ds, err := builtin.Open(tc.split)
			if err != nil {
				t.Fatal(err)
			}
			defer ds.Close()
			if ds.Len() != 10*tc.perClass || !ds.Labeled() {
				t.Fatalf("%d rows, labeled %v; want %d labeled rows", ds.Len(), ds.Labeled(), 10*tc.perClass)
			}
			if !slices.Equal(sources.ClassNames(ds), builtin.ClassNames) {
				t.Errorf("class names %v", sources.ClassNames(ds))
			}
			counts := make(map[int64]int64)
			err = sources.Each(context.Background(), ds, sources.StreamConfig{}, func(s pipeline.Sample) error {
				counts[s.Label]++
				if s.Index%997 == 0 { // decode a sample of them
					img, err := sources.Decode(s, 0)
					if err != nil {
						return err
					}
					if b := img.Bounds(); b.Dx() != 28 || b.Dy() != 28 {
						t.Errorf("%s: %v", s.Origin, b)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for l := range int64(10) {
				if counts[l] != tc.perClass {
					t.Errorf("label %d: %d samples, want %d", l, counts[l], tc.perClass)
				}
			}
		})
	}
	if _, err := builtin.Open("validation"); err == nil {
		t.Error("an unknown split opened")
	}
}
