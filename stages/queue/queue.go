package queue

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/contrastream/contrastream/pipeline"
)

// The defaults: MoCo v2's queue of 4096 keys of 128 dimensions (the
// reference's embedding size).
const (
	DefaultSize = 4096
	DefaultDim  = 128
)

// The bounds of a queue.
const (
	// MaxSize is the largest Config.Size, so that the write position is an
	// exact float32 in State.
	MaxSize = 1 << 24
	// MaxValues is the most float32 values a queue may hold (Size × Dim):
	// 4 GiB.
	MaxValues = 1 << 30
)

// The names of the queue's state entries.
const (
	// StateKeys is the K×D matrix of keys, row-major, in storage order.
	StateKeys = "queue.keys"
	// StatePtr is the write position: []float32{ptr}.
	StatePtr = "queue.ptr"
)

// Config describes MoCo's queue and key encoder. Its zero value is MoCo
// v2's recipe (the reference's): 4096 keys of 128 dimensions, key encoder
// momentum 0.99, constant.
type Config struct {
	// Size is K, the number of keys, in [1, MaxSize]; it need not be a
	// multiple of the batch size. Default 4096.
	Size int `yaml:"size"`
	// Dim is D, the dimension of a key: the encoder's embedding size, with
	// Size × Dim at most MaxValues. Default 128.
	Dim int `yaml:"dim"`
	// Momentum is the key encoder's m in ξ ← m·ξ + (1−m)·θ, in [0, 1];
	// with the cosine schedule, its value at the first step. Default 0.99.
	Momentum *float64 `yaml:"momentum"`
	// MomentumSchedule is "constant" (default) or "cosine": m rises from
	// Momentum to 1 over the run, as BYOL's τ does.
	MomentumSchedule string `yaml:"momentum_schedule"`
}

// Float returns a pointer to v, for Config.Momentum.
func Float(v float64) *float64 { return &v }

// Validate reports the first impossible value as a *pipeline.FieldError
// naming the field as the flow's YAML spells it. The zero Config is valid.
func (c Config) Validate() error {
	if c.Size < 0 || c.Size > MaxSize {
		return &pipeline.FieldError{Field: "size", Msg: fmt.Sprintf("must be in [1, %d] (0: %d), got %d", MaxSize, DefaultSize, c.Size)}
	}
	if c.Dim < 0 || c.Dim > MaxValues {
		return &pipeline.FieldError{Field: "dim", Msg: fmt.Sprintf("must be ≥ 1 (0: %d), got %d", DefaultDim, c.Dim)}
	}
	if k, d := c.sizes(); k*d > MaxValues {
		return &pipeline.FieldError{Field: "size", Msg: fmt.Sprintf("%d keys of %d dimensions exceed %d values", k, d, MaxValues)}
	}
	if c.Momentum != nil && !(*c.Momentum >= 0 && *c.Momentum <= 1) {
		return &pipeline.FieldError{Field: "momentum", Msg: fmt.Sprintf("must be in [0, 1], got %v", *c.Momentum)}
	}
	switch c.MomentumSchedule {
	case "", Constant, Cosine:
	default:
		return &pipeline.FieldError{Field: "momentum_schedule", Msg: fmt.Sprintf("must be %q or %q, got %q", Constant, Cosine, c.MomentumSchedule)}
	}
	return nil
}

// MemoryBytes is what New allocates for c: 4·K·D bytes, the keys.
func (c Config) MemoryBytes() int64 {
	k, d := c.sizes()
	return 4 * int64(k) * int64(d)
}

func (c Config) sizes() (k, d int) {
	k, d = c.Size, c.Dim
	if k == 0 {
		k = DefaultSize
	}
	if d == 0 {
		d = DefaultDim
	}
	return k, d
}

// Queue is MoCo's FIFO of K keys of dimension D. It owns its K×D matrix;
// Keys lends it out. A Queue is not safe for concurrent use. It costs
// 4·K·D bytes, allocated by New; Push and Keys allocate nothing.
type Queue struct {
	k, d int
	ptr  int       // the next row to write: the oldest key
	keys []float32 // K×D, row-major, storage order
}

// New validates cfg and returns a queue of cfg.Size keys of cfg.Dim
// dimensions, each an independent random unit vector (a standard normal
// vector, L2-normalised, as torch_reference.py's F.normalize(randn(K, D)))
// drawn from src. Pass a seeded source, such as rand.NewPCG(seed, stream)
// with the seed derived from the flow's, for a deterministic queue.
func New(cfg Config, src rand.Source) (*Queue, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	k, d := cfg.sizes()
	q := &Queue{k: k, d: d, keys: make([]float32, k*d)}
	rng := rand.New(src)
	row := make([]float64, d)
	for i := range k {
		var ss float64
		for ss == 0 { // an all-zero draw has no direction; draw again
			ss = 0
			for j := range row {
				row[j] = rng.NormFloat64()
				ss += row[j] * row[j]
			}
		}
		inv := 1 / math.Sqrt(ss)
		for j, x := range row {
			q.keys[i*d+j] = float32(x * inv)
		}
	}
	return q, nil
}

// Size is K, the number of keys.
func (q *Queue) Size() int { return q.k }

// Dim is D, the dimension of a key.
func (q *Queue) Dim() int { return q.d }

// Ptr is the row the next key goes to, which holds the oldest key.
func (q *Queue) Ptr() int { return q.ptr }

// Keys returns the K×D matrix of keys, row-major, in storage order (row
// Ptr is the oldest). The slice is the queue's own: it stays valid, and
// changes, with the next Push or Load; do not write to it. The loss needs
// no particular order of its negatives.
func (q *Queue) Keys() []float32 { return q.keys }

// Ordered returns a copy of the keys, oldest first and newest last.
func (q *Queue) Ordered() []float32 {
	out := make([]float32, 0, len(q.keys))
	out = append(out, q.keys[q.ptr*q.d:]...)
	return append(out, q.keys[:q.ptr*q.d]...)
}

// Push appends the N keys of the row-major N×D matrix keys, in order,
// overwriting the N oldest: key j goes to row (Ptr+j) mod K, then Ptr
// becomes (Ptr+N) mod K. When N > K only the last K keys remain. Keys are
// stored as given (the encoder has L2-normalised them). It fails, changing
// nothing, when len(keys) is not a multiple of D.
func (q *Queue) Push(keys []float32) error {
	if len(keys)%q.d != 0 {
		return fmt.Errorf("queue: %d values are not a whole number of keys of dimension %d", len(keys), q.d)
	}
	n := len(keys) / q.d
	start := max(0, n-q.k) // earlier keys would be overwritten in this push
	pos := (q.ptr + start) % q.k
	src := keys[start*q.d:]
	for len(src) > 0 {
		c := copy(q.keys[pos*q.d:], src)
		src = src[c:]
		pos = 0
	}
	q.ptr = (q.ptr + n) % q.k
	return nil
}

// PushRows is Push for keys given one slice per key; each must have D
// values. It fails, changing nothing, when one does not.
func (q *Queue) PushRows(keys [][]float32) error {
	for i, r := range keys {
		if len(r) != q.d {
			return fmt.Errorf("queue: key %d has %d values, want %d", i, len(r), q.d)
		}
	}
	n := len(keys)
	start := max(0, n-q.k)
	for j := start; j < n; j++ {
		pos := (q.ptr + j) % q.k
		copy(q.keys[pos*q.d:(pos+1)*q.d], keys[j])
	}
	q.ptr = (q.ptr + n) % q.k
	return nil
}

// State returns copies of the queue's state for a checkpoint: StateKeys
// (the K×D matrix in storage order) and StatePtr.
func (q *Queue) State() map[string][]float32 {
	return map[string][]float32{StateKeys: slices.Clone(q.keys), StatePtr: {float32(q.ptr)}}
}

// Load restores what State returned. It reads only the "queue." entries
// of state and fails, changing nothing, when one is missing, unknown or
// the wrong size (a queue of another K or D).
func (q *Queue) Load(state map[string][]float32) error {
	keys, ok := state[StateKeys]
	if !ok {
		return fmt.Errorf("queue: state has no %q", StateKeys)
	}
	if len(keys) != q.k*q.d {
		return fmt.Errorf("queue: state %q has %d values, want %d keys × %d dimensions = %d", StateKeys, len(keys), q.k, q.d, q.k*q.d)
	}
	p, ok := state[StatePtr]
	if !ok {
		return fmt.Errorf("queue: state has no %q", StatePtr)
	}
	if len(p) != 1 || !(p[0] >= 0 && p[0] < float32(q.k)) || p[0] != float32(int(p[0])) {
		return fmt.Errorf("queue: state %q is %v, want one whole number in [0, %d)", StatePtr, p, q.k)
	}
	for name := range state {
		if strings.HasPrefix(name, "queue.") && name != StateKeys && name != StatePtr {
			return fmt.Errorf("queue: state has unknown entry %q", name)
		}
	}
	copy(q.keys, keys)
	q.ptr = int(p[0])
	return nil
}
