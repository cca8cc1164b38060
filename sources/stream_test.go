package sources_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sources"
)

// fakeDataset has n samples in chunks of per, with Label = Index % 10. It
// counts chunk reads.
type fakeDataset struct {
	n, per int64
	reads  int
}

func (f *fakeDataset) Name() string  { return "fake" }
func (f *fakeDataset) Len() int64    { return f.n }
func (f *fakeDataset) Labeled() bool { return true }
func (f *fakeDataset) Close() error  { return nil }
func (f *fakeDataset) Chunks() []sources.Chunk {
	var out []sources.Chunk
	for first := int64(0); first < f.n; first += f.per {
		out = append(out, sources.Chunk{First: first, Len: min(f.per, f.n-first), Origin: fmt.Sprint("chunk at ", first)})
	}
	return out
}
func (f *fakeDataset) ReadChunk(_ context.Context, i int) ([]pipeline.Sample, error) {
	f.reads++
	ch := f.Chunks()[i]
	out := make([]pipeline.Sample, ch.Len)
	for k := range out {
		idx := ch.First + int64(k)
		out[k] = pipeline.Sample{Index: idx, Label: idx % 10, Origin: fmt.Sprint("row ", idx)}
	}
	return out, nil
}

// order streams ds under cfg and returns the Indices, per epoch.
func order(t *testing.T, ds sources.Dataset, cfg sources.StreamConfig) [][]int64 {
	t.Helper()
	out := make([][]int64, max(cfg.Epochs, 1))
	err := sources.Each(context.Background(), ds, cfg, func(s pipeline.Sample) error {
		out[s.Epoch] = append(out[s.Epoch], s.Index)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func isPermutation(idx []int64, n int64) bool {
	s := slices.Clone(idx)
	slices.Sort(s)
	for i, v := range s {
		if v != int64(i) {
			return false
		}
	}
	return int64(len(s)) == n
}

func TestStreamOrder(t *testing.T) {
	ds := &fakeDataset{n: 1000, per: 37}
	t.Run("zero value is one epoch in Index order", func(t *testing.T) {
		got := order(t, ds, sources.StreamConfig{})
		if len(got) != 1 || !isPermutation(got[0], 1000) || !slices.IsSorted(got[0]) {
			t.Fatalf("got %d epochs, sorted %v", len(got), slices.IsSorted(got[0]))
		}
	})
	cfg := sources.StreamConfig{Seed: 7, Epochs: 3, Shuffle: true}
	a := order(t, ds, cfg)
	t.Run("each epoch a permutation", func(t *testing.T) {
		for e := range a {
			if !isPermutation(a[e], 1000) {
				t.Fatalf("epoch %d is not a permutation", e)
			}
			if slices.IsSorted(a[e]) {
				t.Fatalf("epoch %d not shuffled", e)
			}
		}
	})
	t.Run("same seed same order", func(t *testing.T) {
		b := order(t, ds, cfg)
		for e := range a {
			if !slices.Equal(a[e], b[e]) {
				t.Fatalf("epoch %d differs between two runs", e)
			}
		}
	})
	t.Run("epochs differ", func(t *testing.T) {
		if slices.Equal(a[0], a[1]) || slices.Equal(a[1], a[2]) {
			t.Fatal("two epochs have the same order")
		}
	})
	t.Run("epoch order depends on (seed, epoch) only", func(t *testing.T) {
		// Epoch 2 alone (resumed) is epoch 2 of the full run.
		c := cfg
		c.StartEpoch = 2
		if got := order(t, ds, c); !slices.Equal(got[2], a[2]) {
			t.Fatal("epoch 2 differs when streamed alone")
		}
	})
	t.Run("seeds differ", func(t *testing.T) {
		c := cfg
		c.Seed = 8
		if slices.Equal(order(t, ds, c)[0], a[0]) {
			t.Fatal("seeds 7 and 8 give the same order")
		}
	})
	t.Run("ShuffleRows 1 keeps chunks together", func(t *testing.T) {
		c := cfg
		c.ShuffleRows = 1
		got := order(t, ds, c)[0]
		for k := 0; k < len(got); {
			first := got[k] / 37 * 37
			n := min(37, 1000-first)
			run := slices.Clone(got[k : k+int(n)])
			slices.Sort(run)
			if run[0] != first || run[n-1] != first+n-1 {
				t.Fatalf("rows of chunk at %d are not consecutive", first)
			}
			k += int(n)
		}
	})
	t.Run("ShuffleRows mixes chunks", func(t *testing.T) {
		// With the default 1024 ≥ 1000 rows the whole epoch is one group:
		// the first 37 samples come from many chunks.
		chunks := map[int64]bool{}
		for _, i := range a[0][:37] {
			chunks[i/37] = true
		}
		if len(chunks) < 10 {
			t.Fatalf("first 37 samples come from %d chunks", len(chunks))
		}
	})
}

func TestStreamShards(t *testing.T) {
	ds := &fakeDataset{n: 1001, per: 50}
	for _, shuffle := range []bool{false, true} {
		for _, n := range []int{1, 2, 3, 8} {
			t.Run(fmt.Sprintf("shuffle %v shards %d", shuffle, n), func(t *testing.T) {
				seen := make([]int, ds.n)
				for i := range n {
					cfg := sources.StreamConfig{Seed: 1, Shuffle: shuffle, Shard: i, Shards: n, ShuffleRows: 200}
					got := order(t, ds, cfg)[0]
					if int64(len(got)) != cfg.EpochLen(ds) {
						t.Fatalf("shard %d: %d samples, EpochLen %d", i, len(got), cfg.EpochLen(ds))
					}
					for _, idx := range got {
						if idx%int64(n) != int64(i) {
							t.Fatalf("shard %d of %d got Index %d", i, n, idx)
						}
						seen[idx]++
					}
				}
				for idx, c := range seen {
					if c != 1 {
						t.Fatalf("Index %d streamed %d times over all shards", idx, c)
					}
				}
			})
		}
	}
}

func TestStreamResume(t *testing.T) {
	ds := &fakeDataset{n: 500, per: 40}
	cfg := sources.StreamConfig{Seed: 3, Epochs: 2, Shuffle: true, ShuffleRows: 100, Shard: 1, Shards: 2}
	full := order(t, ds, cfg)
	for _, off := range []int64{0, 1, 99, 125, 249, 250} {
		c := cfg
		c.StartEpoch, c.Offset = 1, off
		ds.reads = 0
		got := order(t, ds, c)
		if !slices.Equal(got[1], full[1][off:]) {
			t.Fatalf("offset %d: resumed stream is not the rest of epoch 1", off)
		}
		if off == 250 && ds.reads != 0 {
			t.Errorf("skipping the whole epoch read %d chunks", ds.reads)
		}
	}
	c := cfg
	c.Offset = 251
	if err := sources.Each(context.Background(), ds, c, func(pipeline.Sample) error { return nil }); err == nil {
		t.Error("an offset past the epoch's end is accepted")
	}
}

func TestStreamConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		cfg   sources.StreamConfig
		field string
		want  string
	}{
		{sources.StreamConfig{Epochs: -1}, "epochs", "epochs: -1"},
		{sources.StreamConfig{Shards: -2}, "shards", "shards: -2 is negative"},
		{sources.StreamConfig{Shards: 2, Shard: 2}, "shard", "shard: 2 is not in [0, 2)"},
		{sources.StreamConfig{Shard: -1}, "shard", "shard: -1"},
		{sources.StreamConfig{ShuffleRows: -1}, "shuffle_rows", "shuffle_rows"},
		{sources.StreamConfig{Epochs: 2, StartEpoch: 2}, "start_epoch", "start_epoch: 2"},
		{sources.StreamConfig{Offset: -1}, "offset", "offset: -1"},
	} {
		err := sources.Each(context.Background(), &fakeDataset{n: 10, per: 3}, tt.cfg, func(pipeline.Sample) error { return nil })
		if err == nil || !contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want %q", tt.cfg, err, tt.want)
		}
		var fe *pipeline.FieldError
		if !errors.As(err, &fe) || fe.Field != tt.field {
			t.Errorf("%+v: %#v, want a *pipeline.FieldError for %s", tt.cfg, err, tt.field)
		}
	}
}

func TestStage(t *testing.T) {
	ds := &fakeDataset{n: 100, per: 7}
	before := runtime.NumGoroutine()
	t.Run("sends every sample with its epoch", func(t *testing.T) {
		ch := make(chan any, 4)
		errc := make(chan error, 1)
		go func() {
			errc <- sources.NewStage(ds, sources.StreamConfig{Epochs: 2, Shuffle: true}).Run(context.Background(), pipeline.NewInbox(nil, nil), pipeline.NewOutbox(ch, nil))
			close(ch)
		}()
		var n [2]int
		for v := range ch {
			n[v.(pipeline.Sample).Epoch]++
		}
		if err := <-errc; err != nil || n != [2]int{100, 100} {
			t.Fatalf("err %v, per epoch %v", err, n)
		}
	})
	t.Run("stops when ctx is cancelled while blocked", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		ch := make(chan any) // nobody reads
		errc := make(chan error, 1)
		go func() {
			errc <- sources.NewStage(ds, sources.StreamConfig{}).Run(ctx, nil, pipeline.NewOutbox(ch, nil))
		}()
		time.Sleep(10 * time.Millisecond)
		cancel()
		select {
		case err := <-errc:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Run returned %v, want context.Canceled", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
	})
	t.Run("fn's error is returned as it is", func(t *testing.T) {
		stop := errors.New("stop")
		n := 0
		err := sources.Each(context.Background(), ds, sources.StreamConfig{}, func(pipeline.Sample) error {
			if n++; n == 5 {
				return stop
			}
			return nil
		})
		if err != stop || n != 5 {
			t.Fatalf("err %v after %d samples", err, n)
		}
	})
	time.Sleep(10 * time.Millisecond)
	if after := runtime.NumGoroutine(); after > before {
		t.Errorf("goroutines: %d before, %d after", before, after)
	}
}

// badDataset breaks the chunk contract.
type badDataset struct{ fakeDataset }

func (b *badDataset) ReadChunk(ctx context.Context, i int) ([]pipeline.Sample, error) {
	ss, _ := b.fakeDataset.ReadChunk(ctx, i)
	return ss[1:], nil
}

func TestStreamChecksChunks(t *testing.T) {
	err := sources.Each(context.Background(), &badDataset{fakeDataset{n: 10, per: 5}}, sources.StreamConfig{}, func(pipeline.Sample) error { return nil })
	if err == nil || !contains(err.Error(), "read 4 samples, want 5") {
		t.Fatalf("got %v", err)
	}
}

// TestStreamDiagram checks the marble diagram of NewStage's doc.
func TestStreamDiagram(t *testing.T) {
	ds := &fakeDataset{n: 10, per: 4}
	cfg := sources.StreamConfig{Seed: 1, Epochs: 2, Shuffle: true, ShuffleRows: 1}
	got := order(t, ds, cfg)
	if want := [][]int64{{7, 4, 6, 5, 9, 8, 1, 0, 3, 2}, {8, 9, 4, 7, 5, 6, 3, 1, 2, 0}}; !slices.Equal(got[0], want[0]) || !slices.Equal(got[1], want[1]) {
		t.Errorf("got %v, want %v", got, want)
	}
	cfg.Epochs, cfg.Shard, cfg.Shards = 1, 1, 2
	if got, want := order(t, ds, cfg)[0], []int64{7, 5, 9, 1, 3}; !slices.Equal(got, want) {
		t.Errorf("shard 1: got %v, want %v", got, want)
	}
}

// TestStreamShardsAreSubOrders checks that a shard's order is the
// unsharded order of the same seed and epoch without the other shards'
// samples, whatever ShuffleRows and the resume point.
func TestStreamShardsAreSubOrders(t *testing.T) {
	ds := &fakeDataset{n: 1001, per: 50}
	for _, rows := range []int{1, 200, 5000} {
		for _, n := range []int{2, 3, 8} {
			t.Run(fmt.Sprintf("shuffle_rows %d shards %d", rows, n), func(t *testing.T) {
				cfg := sources.StreamConfig{Seed: 5, Epochs: 2, Shuffle: true, ShuffleRows: rows}
				all := order(t, ds, cfg)
				for i := range n {
					c := cfg
					c.Shard, c.Shards = i, n
					got := order(t, ds, c)
					for e := range all {
						var want []int64
						for _, idx := range all[e] {
							if idx%int64(n) == int64(i) {
								want = append(want, idx)
							}
						}
						if !slices.Equal(got[e], want) {
							t.Fatalf("epoch %d shard %d: %v…, want %v…", e, i, got[e][:5], want[:5])
						}
						// Resumed in the middle, the rest is the same.
						c.StartEpoch, c.Offset = e, int64(len(want)/3)
						if rest := order(t, ds, c)[e]; !slices.Equal(rest, want[len(want)/3:]) {
							t.Fatalf("epoch %d shard %d resumed at %d: not the rest of the order", e, i, c.Offset)
						}
						c.StartEpoch, c.Offset = 0, 0
					}
				}
			})
		}
	}
}

// liarDataset has one chunk that claims 1<<40 samples and reads 3.
type liarDataset struct{ fakeDataset }

func (l *liarDataset) Len() int64 { return 1 << 40 }
func (l *liarDataset) Chunks() []sources.Chunk {
	return []sources.Chunk{{First: 0, Len: 1 << 40, Origin: "huge chunk"}}
}
func (l *liarDataset) ReadChunk(ctx context.Context, i int) ([]pipeline.Sample, error) {
	return (&fakeDataset{n: 3, per: 3}).ReadChunk(ctx, 0)
}

// TestStreamCapsPreallocation streams a dataset whose chunk claims 2^40
// samples: Each must not allocate for the claim (a makeslice panic or an
// out-of-memory crash) but report the short read, sharded or not,
// shuffled or not.
func TestStreamCapsPreallocation(t *testing.T) {
	for _, cfg := range []sources.StreamConfig{{}, {Shuffle: true}, {Shuffle: true, Shards: 3, Shard: 1}} {
		err := sources.Each(context.Background(), &liarDataset{}, cfg, func(pipeline.Sample) error { return nil })
		if err == nil || !contains(err.Error(), "huge chunk: read 3 samples, want 1099511627776") {
			t.Errorf("%+v: got %v", cfg, err)
		}
	}
}
