package collate

import (
	"context"
	"fmt"

	"github.com/contrastream/contrastream/pipeline"
)

// The policies for an epoch's last, partial batch.
const (
	Drop = "drop"
	Pad  = "pad"
)

// DefaultBatchSize is the batch size when Config.BatchSize is zero.
const DefaultBatchSize = 256

// The bounds of a batch.
const (
	// MaxBatchSize is the largest Config.BatchSize.
	MaxBatchSize = 1 << 20
	// MaxBatchValues is the most float32 values one view of a batch may
	// hold (BatchSize × C×H×W): 8 GiB, so 16 GiB a batch. The stage
	// checks it against the first pair's shape, before allocating, and
	// stops the flow with an error when the batch would be larger.
	MaxBatchValues = 1 << 31
)

// Config describes the batching. Its zero value means 256 samples a batch,
// the last partial batch of each epoch dropped (the reference's recipe).
type Config struct {
	// BatchSize is the number of samples of every batch, in
	// [1, MaxBatchSize]; with the views' shape it must also keep a batch
	// within MaxBatchValues. Default 256.
	BatchSize int `yaml:"batch_size"`
	// Last is what happens to an epoch's last batch when it is short:
	// "drop" (default) discards it; "pad" fills it up with copies of the
	// epoch's first samples, and Batch.Valid says how many are real.
	Last string `yaml:"last"`
}

// Validate reports the first impossible value as a *pipeline.FieldError
// naming the field as the flow's YAML spells it. The zero Config is valid.
func (c Config) Validate() error {
	if c.BatchSize < 0 || c.BatchSize > MaxBatchSize {
		return &pipeline.FieldError{Field: "batch_size", Msg: fmt.Sprintf("must be in [1, %d] (0: %d), got %d", MaxBatchSize, DefaultBatchSize, c.BatchSize)}
	}
	switch c.Last {
	case "", Drop, Pad:
	default:
		return &pipeline.FieldError{Field: "last", Msg: fmt.Sprintf("must be %q or %q, got %q", Drop, Pad, c.Last)}
	}
	return nil
}

// Collator groups Pairs into fixed-shape Batches. It holds only its
// configuration; each Stage it makes keeps its own state.
type Collator struct {
	size int
	pad  bool
}

// New validates cfg and returns a Collator for it.
func New(cfg Config) (*Collator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("collate: %w", err)
	}
	c := &Collator{size: cfg.BatchSize, pad: cfg.Last == Pad}
	if c.size == 0 {
		c.size = DefaultBatchSize
	}
	return c, nil
}

// BatchSize is the number of samples of every batch.
func (c *Collator) BatchSize() int { return c.size }

// Stage returns the collation stage. It reads pipeline.Pair (or
// *pipeline.Pair) elements and writes *pipeline.Batch elements of exactly
// BatchSize samples:
//
//	in  -- p0 -- p1 -- p2 -- p3 -- p4 | p0' -- p1' -- p2' -- (end)
//	out --------- B{p0,p1} -- B{p2,p3} ---------- B{p0',p1'} ---- (BatchSize 2)
//	      p4 and p2' end their epochs alone: dropped, or padded to
//	      B{p4, p0} (Valid 1) and B{p2', p0'} (Valid 1)
//
// A change of Pair.Epoch ends the batch in progress; Batch.Step counts the
// batches written, from 0, over all epochs. Every view of every pair must
// have the shape of the first pair's views (C×H×W); a pair that does not is
// a fatal error naming its index, epoch and shapes. So is a first pair
// whose shape makes one view of a batch over MaxBatchValues values.
//
// Ownership: each Batch and its slices are newly allocated and belong to
// the receiver; the stage keeps no reference to them. The stage hands each
// pair's view buffers back to the free list (pipeline.RecycleView) once,
// after its last read of them: at once for most pairs; with "pad", the
// first BatchSize−1 pairs of an epoch are kept (read only, never modified)
// until the epoch ends, for its last batch's padding, and their buffers
// recycled then, which costs up to that many pairs of memory.
// The stage runs on one goroutine; its cost is one copy of the view data.
func (c *Collator) Stage() pipeline.Stage {
	return pipeline.StageFunc(func(ctx context.Context, in *pipeline.Inbox, out *pipeline.Outbox) error {
		st := &state{c: c, epoch: -1}
		for {
			v, ok, err := in.Recv(ctx)
			if err != nil {
				return err
			}
			if !ok {
				return st.endEpoch(ctx, out)
			}
			var p pipeline.Pair
			switch x := v.(type) {
			case pipeline.Pair:
				p = x
			case *pipeline.Pair:
				if x == nil {
					return fmt.Errorf("collate: got a nil *pipeline.Pair")
				}
				p = *x
			default:
				return fmt.Errorf("collate: got an element of type %T, want pipeline.Pair", v)
			}
			if err := st.add(ctx, out, p); err != nil {
				return err
			}
		}
	})
}

// state is one running stage's batch in progress.
type state struct {
	c      *Collator
	shaped bool
	// C, H, W is the shape of every view, the first pair's.
	C, H, W int
	epoch   int
	// first holds the epoch's first pairs, for padding. Their view buffers
	// are not recycled until the epoch ends: they are read again then.
	first []pipeline.Pair
	b     *pipeline.Batch // in progress; nil when none
	step  int64
}

func (st *state) add(ctx context.Context, out *pipeline.Outbox, p pipeline.Pair) error {
	if err := st.checkShape(p); err != nil {
		return err
	}
	if p.Epoch != st.epoch {
		if err := st.endEpoch(ctx, out); err != nil {
			return err
		}
		st.epoch = p.Epoch
	}
	keep := st.c.pad && len(st.first) < st.c.size-1
	if keep {
		st.first = append(st.first, p)
	}
	st.put(p, !keep)
	if len(st.b.Indices) == st.c.size {
		return st.emit(ctx, out)
	}
	return nil
}

func (st *state) checkShape(p pipeline.Pair) error {
	first := !st.shaped
	if first {
		v := p.Views[0]
		st.C, st.H, st.W, st.shaped = v.C, v.H, v.W, true
		if v.C <= 0 || v.H <= 0 || v.W <= 0 {
			return fmt.Errorf("collate: sample %d (epoch %d): view 0 has the impossible shape %d×%d×%d",
				p.Index, p.Epoch, v.C, v.H, v.W)
		}
	}
	for i, v := range p.Views {
		if v.C != st.C || v.H != st.H || v.W != st.W {
			return fmt.Errorf("collate: sample %d (epoch %d): view %d is %d×%d×%d (C×H×W), but the batch is %d×%d×%d; set the augment stage's size and channels so that every view has one shape",
				p.Index, p.Epoch, i, v.C, v.H, v.W, st.C, st.H, st.W)
		}
		if len(v.Data) != v.C*v.H*v.W {
			return fmt.Errorf("collate: sample %d (epoch %d): view %d has %d values, its shape %d×%d×%d needs %d",
				p.Index, p.Epoch, i, len(v.Data), v.C, v.H, v.W, v.C*v.H*v.W)
		}
	}
	// The shape is now that of real data, so the product cannot overflow.
	if n := int64(st.c.size) * int64(st.C*st.H*st.W); first && n > MaxBatchValues {
		return fmt.Errorf("collate: a batch of %d views of %d×%d×%d (C×H×W) is %d float32 values (%.1f GiB) per view, over the limit of %d; lower batch_size or the augment stage's size",
			st.c.size, st.C, st.H, st.W, n, float64(4*n)/(1<<30), MaxBatchValues)
	}
	return nil
}

// put appends p to the batch in progress, starting one when there is none,
// and recycles p's view buffers when recycle is set.
func (st *state) put(p pipeline.Pair, recycle bool) {
	n := st.C * st.H * st.W
	if st.b == nil {
		size := st.c.size
		st.b = &pipeline.Batch{
			Epoch:   st.epoch,
			Indices: make([]int64, 0, size),
			Labels:  make([]int64, 0, size),
			C:       st.C, H: st.H, W: st.W,
			Views: [2][]float32{make([]float32, size*n), make([]float32, size*n)},
		}
	}
	b := st.b
	k := len(b.Indices)
	b.Indices = append(b.Indices, p.Index)
	b.Labels = append(b.Labels, p.Label)
	for v := range b.Views {
		copy(b.Views[v][k*n:(k+1)*n], p.Views[v].Data)
		if recycle {
			pipeline.RecycleView(p.Views[v].Data)
		}
	}
}

// endEpoch drops or pads the partial batch in progress, if any, and then
// recycles the view buffers of the epoch's first pairs, once each.
func (st *state) endEpoch(ctx context.Context, out *pipeline.Outbox) error {
	defer st.releaseFirst()
	if st.b == nil {
		return nil
	}
	if !st.c.pad {
		st.b = nil
		return nil
	}
	valid := len(st.b.Indices)
	for i := 0; len(st.b.Indices) < st.c.size; i++ {
		st.put(st.first[i%len(st.first)], false)
	}
	st.b.Valid = valid
	return st.emit(ctx, out)
}

// releaseFirst recycles the view buffers of the epoch's first pairs, which
// put did not, and forgets the pairs.
func (st *state) releaseFirst() {
	for _, p := range st.first {
		for _, v := range p.Views {
			pipeline.RecycleView(v.Data)
		}
	}
	clear(st.first)
	st.first = st.first[:0]
}

func (st *state) emit(ctx context.Context, out *pipeline.Outbox) error {
	b := st.b
	st.b = nil
	if b.Valid == 0 {
		b.Valid = len(b.Indices)
	}
	b.Step = st.step
	st.step++
	return out.Send(ctx, b)
}
