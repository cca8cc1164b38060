package queue

import (
	"errors"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/contrastream/contrastream/pipeline"
)

func newQueue(t *testing.T, k, d int, seed uint64) *Queue {
	t.Helper()
	q, err := New(Config{Size: k, Dim: d}, rand.NewPCG(seed, 0))
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestInitUnitAndSeeded(t *testing.T) {
	q := newQueue(t, 50, 128, 7)
	keys := q.Keys()
	if len(keys) != 50*128 || q.Size() != 50 || q.Dim() != 128 || q.Ptr() != 0 {
		t.Fatalf("queue of %d values, size %d, dim %d, ptr %d", len(keys), q.Size(), q.Dim(), q.Ptr())
	}
	var mean float64
	for i := range 50 {
		var ss float64
		for _, x := range keys[i*128 : (i+1)*128] {
			ss += float64(x) * float64(x)
			mean += float64(x)
		}
		if math.Abs(math.Sqrt(ss)-1) > 1e-6 {
			t.Errorf("key %d has norm %v", i, math.Sqrt(ss))
		}
	}
	if mean /= 50 * 128; math.Abs(mean) > 0.01 {
		t.Errorf("mean component %v, want about 0", mean)
	}
	if !slices.Equal(keys, newQueue(t, 50, 128, 7).Keys()) {
		t.Error("same seed, different keys")
	}
	if slices.Equal(keys, newQueue(t, 50, 128, 8).Keys()) {
		t.Error("different seeds, same keys")
	}
}

func TestDefaults(t *testing.T) {
	q, err := New(Config{}, rand.NewPCG(1, 2))
	if err != nil {
		t.Fatal(err)
	}
	if q.Size() != 4096 || q.Dim() != 128 {
		t.Errorf("default queue %d×%d, want 4096×128", q.Size(), q.Dim())
	}
}

// key returns a D-vector that encodes its number n.
func key(n, d int) []float32 {
	k := make([]float32, d)
	for j := range k {
		k[j] = float32(n*10 + j)
	}
	return k
}

func TestPushKeepsLastKInOrder(t *testing.T) {
	const d = 3
	for _, tt := range []struct {
		name    string
		k       int
		batches []int
		rows    bool
	}{
		{"K=10 N=4", 10, []int{4, 4, 4, 4, 4}, false}, // 20 keys, K not a multiple of N
		{"K=10 N=4 rows", 10, []int{4, 4, 4, 4, 4}, true},
		{"K=7 N=3", 7, []int{3, 3, 3, 3, 3, 3, 3, 3}, false},
		{"K=5 mixed", 5, []int{2, 0, 3, 4, 1}, false},
		{"batch larger than K", 5, []int{3, 12}, false},
		{"batch larger than K rows", 5, []int{3, 12, 6}, true},
		{"K=1", 1, []int{2, 3}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			q := newQueue(t, tt.k, d, 1)
			init := q.Ordered()
			var all [][]float32 // every key ever pushed, in order
			for _, n := range tt.batches {
				var flat []float32
				var rows [][]float32
				for range n {
					k := key(len(all), d)
					all = append(all, k)
					flat = append(flat, k...)
					rows = append(rows, k)
				}
				var err error
				if tt.rows {
					err = q.PushRows(rows)
				} else {
					err = q.Push(flat)
				}
				if err != nil {
					t.Fatal(err)
				}
				// The queue now holds the last K of (initial keys, pushed
				// keys), oldest first.
				var want []float32
				want = append(want, init...)
				for _, k := range all {
					want = append(want, k...)
				}
				want = want[len(want)-tt.k*d:]
				if got := q.Ordered(); !slices.Equal(got, want) {
					t.Fatalf("after %d keys: Ordered() = %v, want %v", len(all), got, want)
				}
				if q.Ptr() != len(all)%tt.k {
					t.Fatalf("after %d keys: Ptr() = %d, want %d", len(all), q.Ptr(), len(all)%tt.k)
				}
			}
		})
	}
}

// TestPushMatchesReference replays torch_reference.py's loop:
// queue[(ptr + j) % K] = k_j; ptr = (ptr + N) % K.
func TestPushMatchesReference(t *testing.T) {
	const k, d, n = 10, 2, 4
	q := newQueue(t, k, d, 3)
	ref := slices.Clone(q.Keys())
	ptr := 0
	for step := range 7 {
		batch := make([]float32, n*d)
		for i := range batch {
			batch[i] = float32(step*100 + i)
		}
		for j := range n {
			copy(ref[((ptr+j)%k)*d:], batch[j*d:(j+1)*d])
		}
		ptr = (ptr + n) % k
		if err := q.Push(batch); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(q.Keys(), ref) || q.Ptr() != ptr {
			t.Fatalf("step %d: storage %v ptr %d, reference %v ptr %d", step, q.Keys(), q.Ptr(), ref, ptr)
		}
	}
}

func TestPushRejects(t *testing.T) {
	q := newQueue(t, 4, 3, 1)
	before := slices.Clone(q.Keys())
	if err := q.Push(make([]float32, 7)); err == nil {
		t.Error("Push of 7 values into a queue of dimension 3")
	}
	if err := q.PushRows([][]float32{{1, 2, 3}, {1, 2}}); err == nil {
		t.Error("PushRows of a short key")
	}
	if !slices.Equal(before, q.Keys()) || q.Ptr() != 0 {
		t.Error("a failed push changed the queue")
	}
}

func TestStateLoad(t *testing.T) {
	a := newQueue(t, 7, 2, 1)
	if err := a.Push(make([]float32, 2*3)); err != nil {
		t.Fatal(err)
	}
	st := a.State()
	b := newQueue(t, 7, 2, 99)
	if err := b.Load(st); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Keys(), b.Keys()) || a.Ptr() != b.Ptr() || b.Ptr() != 3 {
		t.Fatal("loaded queue differs")
	}
	// Both continue alike.
	batch := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	_ = a.Push(batch)
	_ = b.Push(batch)
	if !slices.Equal(a.Ordered(), b.Ordered()) {
		t.Error("continuations differ")
	}
	// The state is a copy.
	st[StateKeys][0] = 42
	if a.Keys()[0] == 42 {
		t.Error("State shares the queue's storage")
	}

	with := func(edit func(map[string][]float32)) map[string][]float32 {
		s := maps.Clone(a.State())
		edit(s)
		return s
	}
	for _, tt := range []struct {
		name  string
		state map[string][]float32
		want  string
	}{
		{"no keys", with(func(s map[string][]float32) { delete(s, StateKeys) }), StateKeys},
		{"other size", with(func(s map[string][]float32) { s[StateKeys] = make([]float32, 12) }), StateKeys},
		{"no ptr", with(func(s map[string][]float32) { delete(s, StatePtr) }), StatePtr},
		{"ptr out of range", with(func(s map[string][]float32) { s[StatePtr] = []float32{7} }), StatePtr},
		{"ptr not whole", with(func(s map[string][]float32) { s[StatePtr] = []float32{1.5} }), StatePtr},
		{"unknown", with(func(s map[string][]float32) { s["queue.labels"] = nil }), "queue.labels"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newQueue(t, 7, 2, 5)
			before := slices.Clone(c.Keys())
			err := c.Load(tt.state)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load: %v, want an error naming %q", err, tt.want)
			}
			if !slices.Equal(before, c.Keys()) || c.Ptr() != 0 {
				t.Error("a failed Load changed the queue")
			}
		})
	}
	// Other components' entries are ignored.
	if err := b.Load(with(func(s map[string][]float32) { s["optim.step"] = []float32{0, 0} })); err != nil {
		t.Error(err)
	}
}

func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		cfg   Config
		field string
	}{
		{Config{Size: -1}, "size"},
		{Config{Size: MaxSize + 1}, "size"},
		{Config{Dim: -3}, "dim"},
		{Config{Size: 1 << 20, Dim: 1 << 11}, "size"},
		{Config{Momentum: Float(1.01)}, "momentum"},
		{Config{Momentum: Float(math.NaN())}, "momentum"},
		{Config{MomentumSchedule: "linear"}, "momentum_schedule"},
	} {
		err := tt.cfg.Validate()
		var fe *pipeline.FieldError
		if !errors.As(err, &fe) || fe.Field != tt.field {
			t.Errorf("%+v: Validate() = %v, want a FieldError for %q", tt.cfg, err, tt.field)
		}
		if _, err := New(tt.cfg, rand.NewPCG(1, 1)); !errors.As(err, &fe) || fe.Field != tt.field {
			t.Errorf("%+v: New: %v, want a FieldError for %q", tt.cfg, err, tt.field)
		}
	}
	for _, c := range []Config{{}, {Momentum: Float(0)}, {Momentum: Float(1), MomentumSchedule: Cosine}, {Size: 1, Dim: 1}} {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
}

// TestMemoryBytes: what a queue of the config holds, defaults included.
func TestMemoryBytes(t *testing.T) {
	for _, c := range []Config{{}, {Size: 50, Dim: 16}, {Size: 7}} {
		q, err := New(c, rand.NewPCG(1, 2))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := c.MemoryBytes(), int64(4*len(q.Keys())); got != want {
			t.Errorf("%+v: MemoryBytes = %d, the queue holds %d bytes", c, got, want)
		}
	}
}
