package sources_test

import (
	"context"
	"slices"
	"testing"

	"github.com/contrastream/contrastream/sources"
)

func TestBalancedSubset(t *testing.T) {
	ds, err := sources.Open(sources.Config{Path: "testdata/folder"}) // labels 0,0,0,0,1,1,1,1,2,2,2,2
	if err != nil {
		t.Fatal(err)
	}
	idx, err := sources.Balanced(context.Background(), ds, 2)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{0, 1, 4, 5, 8, 9}; !slices.Equal(idx, want) {
		t.Fatalf("Balanced = %v, want %v", idx, want)
	}
	sub, err := sources.Subset(ds, idx)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if sub.Len() != 6 || !sub.Labeled() || !slices.Equal(sources.ClassNames(sub), testClasses) {
		t.Fatalf("subset: Len %d, labeled %v, classes %q", sub.Len(), sub.Labeled(), sources.ClassNames(sub))
	}
	for k, s := range readAll(t, sub) {
		if s.Index != int64(k) || s.Label != int64(k/2) || markerOf(t, s) != marker(idx[k]) {
			t.Errorf("subset sample %d: Index %d label %d marker %d (%s)", k, s.Index, s.Label, markerOf(t, s), s.Origin)
		}
	}
	if _, err := sources.Balanced(context.Background(), ds, 5); err == nil || !contains(err.Error(), "label 0 has 4 samples, fewer than 5") {
		t.Errorf("Balanced(5) = %v", err)
	}
	flat, err := sources.Open(sources.Config{Path: "testdata/flat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sources.Balanced(context.Background(), flat, 1); err == nil {
		t.Error("Balanced of an unlabeled dataset")
	}
	for _, bad := range [][]int64{nil, {2, 1}, {1, 1}, {12}, {-1}} {
		if _, err := sources.Subset(ds, bad); err == nil {
			t.Errorf("Subset(%v) accepted", bad)
		}
	}
}

// TestSubsetShuffle streams a subset of a multi-chunk dataset shuffled.
func TestSubsetShuffle(t *testing.T) {
	ds := &fakeDataset{n: 300, per: 17}
	var idx []int64
	for i := int64(0); i < 300; i += 3 {
		idx = append(idx, i)
	}
	sub, err := sources.Subset(ds, idx)
	if err != nil {
		t.Fatal(err)
	}
	got := order(t, sub, sources.StreamConfig{Shuffle: true, Seed: 1, ShuffleRows: 20})[0]
	if !isPermutation(got, 100) {
		t.Fatal("not a permutation of the subset")
	}
}
