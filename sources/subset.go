package sources

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"

	"github.com/contrastream/contrastream/pipeline"
)

// Balanced picks perClass samples of each label of ds: the first ones in
// Index order, so the choice is deterministic and a prefix of a larger one.
// It returns their Indices in increasing order, for Subset. It reads the
// whole dataset once (without decoding). ds must be labeled; a label with
// fewer than perClass samples, or samples without a label, are errors.
func Balanced(ctx context.Context, ds Dataset, perClass int) ([]int64, error) {
	if perClass <= 0 {
		return nil, fmt.Errorf("sources: %s: balanced slice of %d per class", ds.Name(), perClass)
	}
	if !ds.Labeled() {
		return nil, fmt.Errorf("sources: %s: a balanced slice needs labels; the dataset has none", ds.Name())
	}
	picked := map[int64][]int64{}
	err := Each(ctx, ds, StreamConfig{}, func(s pipeline.Sample) error {
		if s.Label == pipeline.NoLabel {
			return fmt.Errorf("sources: %s: no label", s.Origin)
		}
		if len(picked[s.Label]) < perClass {
			picked[s.Label] = append(picked[s.Label], s.Index)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []int64
	for _, l := range slices.Sorted(maps.Keys(picked)) {
		if n := len(picked[l]); n < perClass {
			return nil, fmt.Errorf("sources: %s: label %d has %d samples, fewer than %d", ds.Name(), l, n, perClass)
		}
		out = append(out, picked[l]...)
	}
	slices.Sort(out)
	return out, nil
}

// Subset is the dataset of the samples of ds with the given Indices (in
// increasing order, without repeats), renumbered: the k-th of them has
// Index k in the subset and keeps its Origin and Label. Its chunks are the
// non-empty parts of ds's chunks, so memory stays bounded by one chunk of
// ds. The subset owns ds: closing it closes ds.
func Subset(ds Dataset, indices []int64) (Dataset, error) {
	if len(indices) == 0 {
		return nil, fmt.Errorf("sources: %s: empty subset", ds.Name())
	}
	for k, i := range indices {
		if i < 0 || i >= ds.Len() {
			return nil, fmt.Errorf("sources: %s: subset index %d out of range [0, %d)", ds.Name(), i, ds.Len())
		}
		if k > 0 && i <= indices[k-1] {
			return nil, fmt.Errorf("sources: %s: subset indices must increase (%d after %d)", ds.Name(), i, indices[k-1])
		}
	}
	s := &subset{ds: ds, indices: slices.Clone(indices)}
	parent := ds.Chunks()
	for pi, ch := range parent {
		lo := sort.Search(len(s.indices), func(k int) bool { return s.indices[k] >= ch.First })
		hi := sort.Search(len(s.indices), func(k int) bool { return s.indices[k] >= ch.First+ch.Len })
		if hi > lo {
			s.chunks = append(s.chunks, Chunk{First: int64(lo), Len: int64(hi - lo), Origin: ch.Origin})
			s.parent = append(s.parent, pi)
		}
	}
	return s, nil
}

type subset struct {
	ds      Dataset
	indices []int64
	chunks  []Chunk
	parent  []int // parent chunk of each chunk
}

func (s *subset) Name() string         { return s.ds.Name() + " (subset)" }
func (s *subset) Len() int64           { return int64(len(s.indices)) }
func (s *subset) Labeled() bool        { return s.ds.Labeled() }
func (s *subset) Chunks() []Chunk      { return s.chunks }
func (s *subset) Close() error         { return s.ds.Close() }
func (s *subset) ClassNames() []string { return ClassNames(s.ds) }

func (s *subset) ReadChunk(ctx context.Context, i int) ([]pipeline.Sample, error) {
	if err := checkChunkIndex(s.Name(), i, len(s.chunks)); err != nil {
		return nil, err
	}
	ch := s.chunks[i]
	pch := s.ds.Chunks()[s.parent[i]]
	all, err := s.ds.ReadChunk(ctx, s.parent[i])
	if err != nil {
		return nil, err
	}
	if err := checkChunk(s.ds, pch, all); err != nil {
		return nil, err
	}
	out := make([]pipeline.Sample, ch.Len) // ch.Len ≤ len(all): counted from s.indices, checked by Subset
	for k := range out {
		out[k] = all[s.indices[ch.First+int64(k)]-pch.First]
		out[k].Index = ch.First + int64(k)
	}
	return out, nil
}
