package sources

import (
	"context"
	"fmt"
	"math/bits"
	"math/rand/v2"

	"github.com/contrastream/contrastream/pipeline"
)

// DefaultShuffleRows is StreamConfig.ShuffleRows when unset.
const DefaultShuffleRows = 1024

// StreamConfig says how a dataset is streamed. Its zero value streams one
// epoch in Index order, unsharded.
type StreamConfig struct {
	// Seed makes the shuffled order: epoch e's order derives from (Seed, e)
	// only, never from the time or the number of workers.
	Seed int64 `yaml:"seed"`
	// Epochs is the number of passes over the dataset. Default 1.
	Epochs int `yaml:"epochs"`
	// Shuffle permutes each epoch: the chunks' order, then the rows within
	// groups of consecutive chunks of that order (see ShuffleRows). With
	// Shuffle false, samples come in Index order.
	Shuffle bool `yaml:"shuffle"`
	// ShuffleRows is the least number of rows (before sharding) whose order
	// is mixed together: chunks are taken in their shuffled order and
	// grouped until a group holds ShuffleRows rows; each group's rows are
	// shuffled together. 1 shuffles within single chunks; larger values mix
	// more (a folder sorted by class, a Parquet file of small row groups)
	// for more memory: a group's samples (of this shard) are held at once,
	// with 8 bytes per row of the group (of every shard). Default
	// DefaultShuffleRows.
	ShuffleRows int `yaml:"shuffle_rows"`
	// Shard and Shards split the dataset: shard i of n takes the samples
	// whose Index % n == i, whatever the order, so that the shards are
	// disjoint and together cover the dataset. A shard's order is the
	// unsharded order of the same Seed and epoch with the other shards'
	// samples left out. Default shard 0 of 1.
	//
	// Cost: every shard reads (and decompresses) every chunk and keeps 1/n
	// of its rows, so n shards together read the dataset n times over.
	// That is cheap for a few shards or a dataset that fits in the page
	// cache. For many shards over large files, shard by file instead: give
	// each worker its own files (Path, Paths) and Shards 1; each file is
	// then read once, at the price of shards of unequal sizes whose orders
	// are not sub-orders of one order.
	Shard int `yaml:"shard"`
	// Shards is the number of shards; see Shard. Default 1.
	Shards int `yaml:"shards"`
	// StartEpoch and Offset resume a stream: the epochs before StartEpoch
	// are not streamed, nor the first Offset samples (of this shard) of
	// StartEpoch. Whole groups of chunks that are skipped are not read.
	StartEpoch int `yaml:"start_epoch"`
	// Offset is the number of samples of StartEpoch (of this shard) not
	// streamed; see StartEpoch. Default 0.
	Offset int64 `yaml:"offset"`
}

// Validate checks c. Its errors are *pipeline.FieldError naming the field
// by its YAML name.
func (c StreamConfig) Validate() error {
	c = c.defaults()
	switch {
	case c.Epochs < 0:
		return fieldError("epochs", "%d is negative", c.Epochs)
	case c.Shards < 0:
		return fieldError("shards", "%d is negative", c.Shards)
	case c.Shard < 0 || c.Shard >= c.Shards:
		return fieldError("shard", "%d is not in [0, %d)", c.Shard, c.Shards)
	case c.ShuffleRows < 0:
		return fieldError("shuffle_rows", "%d is negative", c.ShuffleRows)
	case c.StartEpoch < 0 || c.StartEpoch >= c.Epochs:
		return fieldError("start_epoch", "%d is not in [0, %d)", c.StartEpoch, c.Epochs)
	case c.Offset < 0:
		return fieldError("offset", "%d is negative", c.Offset)
	}
	return nil
}

func (c StreamConfig) defaults() StreamConfig {
	if c.Epochs == 0 {
		c.Epochs = 1
	}
	if c.Shards == 0 {
		c.Shards = 1
	}
	if c.ShuffleRows == 0 {
		c.ShuffleRows = DefaultShuffleRows
	}
	return c
}

// EpochLen is the number of samples one epoch of ds streams under c: the
// size of c's shard.
func (c StreamConfig) EpochLen(ds Dataset) int64 {
	c = c.defaults()
	var n int64
	for _, ch := range ds.Chunks() {
		n += shardCount(ch, c.Shard, c.Shards)
	}
	return n
}

// shardCount counts the Indices in ch that shard i of n takes.
func shardCount(ch Chunk, i, n int) int64 {
	below := func(x int64) int64 { // |{k in [0,x): k % n == i}|
		if x <= int64(i) {
			return 0
		}
		return (x - int64(i) + int64(n) - 1) / int64(n)
	}
	return below(ch.First+ch.Len) - below(ch.First)
}

// NewStage returns a source stage that streams ds under cfg: every sample
// of cfg's shard, for each epoch, with Epoch set, through out.Send. Its Run
// returns cfg's validation error before sending anything, a structural
// error of ds (an unreadable chunk) as it meets it, or ctx's error when ctx
// is done. The stage does not close ds: its caller does, after the flow.
//
// Marble diagram: chunks [0 1 2 3][4 5 6 7][8 9], Seed 1, Shuffle,
// ShuffleRows 1 (rows mixed within single chunks):
//
//	epoch 0: ─7─4─6─5─9─8─1─0─3─2─|
//	epoch 1: ─8─9─4─7─5─6─3─1─2─0─|
//
// With Shards 2, shard 1 gets the odd Indices in the same order (each
// group's rows are shuffled whole, then filtered by shard):
//
//	epoch 0: ─7─5─9─1─3─|
//
// Every shard reads every chunk whole: see StreamConfig.Shard for
// that cost.
func NewStage(ds Dataset, cfg StreamConfig) pipeline.Stage {
	return pipeline.StageFunc(func(ctx context.Context, _ *pipeline.Inbox, out *pipeline.Outbox) error {
		return Each(ctx, ds, cfg, func(s pipeline.Sample) error { return out.Send(ctx, s) })
	})
}

// Each streams ds under cfg without a runner: it calls fn with each sample
// in the order NewStage sends them, and stops at the first error of fn
// (returning it as it is), of ds, or of ctx. One goroutine does it all.
func Each(ctx context.Context, ds Dataset, cfg StreamConfig, fn func(pipeline.Sample) error) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.defaults()
	if total := cfg.EpochLen(ds); cfg.Offset > total {
		return fmt.Errorf("sources: offset: %d is past the end of the epoch (%d samples)", cfg.Offset, total)
	}
	chunks := ds.Chunks()
	for e := cfg.StartEpoch; e < cfg.Epochs; e++ {
		skip := int64(0)
		if e == cfg.StartEpoch {
			skip = cfg.Offset
		}
		for g, group := range cfg.groups(chunks, e) {
			var count int64
			for _, ci := range group {
				count += shardCount(chunks[ci], cfg.Shard, cfg.Shards)
			}
			if skip >= count {
				skip -= count
				continue
			}
			// rows holds the shard's samples of the group as read; slots,
			// when shuffling, has one entry per row of the group (every
			// shard's): the position in rows of a row of this shard, or
			// -1. Shuffling slots, then skipping the -1s, gives
			// this shard the unsharded order with the other shards' rows
			// left out. The counts come from the dataset's metadata,
			// so the pre-allocations are capped: a chunk that claims 2^40
			// rows and holds 5 costs 5 rows of memory, then an error.
			rows := make([]pipeline.Sample, 0, preallocLen(count))
			var slots []int
			for _, ci := range group {
				if err := ctx.Err(); err != nil {
					return err
				}
				ss, err := ds.ReadChunk(ctx, ci)
				if err != nil {
					return err
				}
				if err := checkChunk(ds, chunks[ci], ss); err != nil {
					return err
				}
				for _, s := range ss {
					slot := -1
					if s.Index%int64(cfg.Shards) == int64(cfg.Shard) {
						s.Epoch = e
						slot = len(rows)
						rows = append(rows, s)
					}
					if cfg.Shuffle {
						slots = append(slots, slot)
					}
				}
			}
			if cfg.Shuffle && len(slots) > 1 {
				src := newSource(cfg.Seed, e, 1, uint64(g))
				for i := len(slots) - 1; i > 0; i-- {
					j := src.intn(uint64(i + 1))
					slots[i], slots[j] = slots[j], slots[i]
				}
			}
			emit := func(s pipeline.Sample) error {
				if skip > 0 { // skip < count: the group is not skipped whole
					skip--
					return nil
				}
				if err := ctx.Err(); err != nil {
					return err
				}
				return fn(s)
			}
			if !cfg.Shuffle {
				for _, s := range rows {
					if err := emit(s); err != nil {
						return err
					}
				}
				continue
			}
			for _, k := range slots {
				if k >= 0 {
					if err := emit(rows[k]); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// groups returns epoch e's chunks in streaming order, grouped: the rows of
// a group are shuffled together.
func (c StreamConfig) groups(chunks []Chunk, e int) [][]int {
	order := make([]int, len(chunks))
	for i := range order {
		order[i] = i
	}
	if !c.Shuffle {
		out := make([][]int, len(order))
		for i := range order {
			out[i] = order[i : i+1]
		}
		return out
	}
	src := newSource(c.Seed, e, 0, 0)
	for i := len(order) - 1; i > 0; i-- {
		j := src.intn(uint64(i + 1))
		order[i], order[j] = order[j], order[i]
	}
	var out [][]int
	start, rows := 0, int64(0)
	for i, ci := range order {
		rows += chunks[ci].Len
		if rows >= int64(c.ShuffleRows) || i == len(order)-1 {
			out = append(out, order[start:i+1])
			start, rows = i+1, 0
		}
	}
	return out
}

// checkChunk verifies that a ReadChunk result matches its chunk, so that a
// faulty Dataset cannot break the Index contract silently.
func checkChunk(ds Dataset, ch Chunk, ss []pipeline.Sample) error {
	if int64(len(ss)) != ch.Len {
		return fmt.Errorf("sources: %s: %s: read %d samples, want %d", ds.Name(), ch.Origin, len(ss), ch.Len)
	}
	for k, s := range ss {
		if s.Index != ch.First+int64(k) {
			return fmt.Errorf("sources: %s: %s: sample %d has Index %d, want %d", ds.Name(), ch.Origin, k, s.Index, ch.First+int64(k))
		}
	}
	return nil
}

// source is the random stream of one purpose of one epoch: PCG seeded by
// SplitMix64 from (seed, epoch, purpose, k). Both algorithms are fixed, and
// intn is written here rather than taken from math/rand, so that an order
// never changes with the Go version.
type source struct{ pcg *rand.PCG }

func newSource(seed int64, epoch int, purpose, k uint64) source {
	h := splitmix(uint64(seed))
	h = splitmix(h ^ uint64(epoch))
	h = splitmix(h ^ purpose)
	h = splitmix(h ^ k)
	return source{rand.NewPCG(h, splitmix(h))}
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// intn returns a uniform number in [0, n), n > 0 (Lemire's method).
func (s source) intn(n uint64) int {
	hi, lo := bits.Mul64(s.pcg.Uint64(), n)
	if lo < n {
		thresh := -n % n
		for lo < thresh {
			hi, lo = bits.Mul64(s.pcg.Uint64(), n)
		}
	}
	return int(hi)
}
