package eval

import (
	"fmt"
	"math"
	"runtime"

	"github.com/contrastream/contrastream/pipeline"
)

// KNNConfig configures the kNN monitor. The zero value means the defaults
// of MoCo's demo: k = 200, T = 0.1.
type KNNConfig struct {
	// K is the number of neighbours that vote. Default 200.
	K int `yaml:"k"`
	// Temperature scales the votes: a neighbour of cosine s votes with
	// weight exp(s/T); > 0 (in Go: new(0.07)). nil (left out) means
	// DefaultKNNTemperature; 0 is an error, not the default.
	Temperature *float64 `yaml:"temperature"`
	// Workers is the number of goroutines that score queries. Default
	// GOMAXPROCS.
	Workers int `yaml:"workers"`
}

// Validate checks c.
func (c KNNConfig) Validate() error {
	if c.K < 0 {
		return &pipeline.FieldError{Field: "k", Msg: fmt.Sprintf("must be ≥ 1 (0: 200), got %d", c.K)}
	}
	if t := c.Temperature; t != nil && !(*t > 0 && !math.IsInf(*t, 0)) {
		return &pipeline.FieldError{Field: "temperature", Msg: fmt.Sprintf("must be a finite number > 0 (leave it out for %g), got %v", DefaultKNNTemperature, *t)}
	}
	if c.Workers < 0 {
		return &pipeline.FieldError{Field: "workers", Msg: fmt.Sprintf("must be ≥ 0, got %d", c.Workers)}
	}
	return nil
}

// The defaults of KNNConfig, MoCo's demo's.
const (
	DefaultKNNK           = 200
	DefaultKNNTemperature = 0.1
)

// TemperatureOrDefault is the temperature in use: *c.Temperature, or
// DefaultKNNTemperature when it is nil.
func (c KNNConfig) TemperatureOrDefault() float64 {
	if c.Temperature == nil {
		return DefaultKNNTemperature
	}
	return *c.Temperature
}

func (c KNNConfig) withDefaults() KNNConfig {
	if c.K == 0 {
		c.K = DefaultKNNK
	}
	c.Temperature = new(c.TemperatureOrDefault())
	if c.Workers == 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	return c
}

// Features is a matrix of N feature vectors of dimension D, row-major, with
// a label per row.
type Features struct {
	N, D   int
	Data   []float32 // N×D
	Labels []int64   // N; labels are 0..classes-1
}

func (f Features) check(name string) error {
	if f.N <= 0 || f.D <= 0 || len(f.Data) != f.N*f.D || len(f.Labels) != f.N {
		return fmt.Errorf("eval: %s: %d×%d features with %d values and %d labels", name, f.N, f.D, len(f.Data), len(f.Labels))
	}
	for i, l := range f.Labels {
		if l < 0 {
			return fmt.Errorf("eval: %s: row %d has no label (%d)", name, i, l)
		}
	}
	return nil
}

// KNNResult is the outcome of a kNN evaluation.
type KNNResult struct {
	// Accuracy is the fraction of queries whose top vote is their label.
	Accuracy float64
	// Correct and Total count the queries.
	Correct, Total int
	// Predictions holds each query's predicted label.
	Predictions []int64
}

// KNN classifies every query by weighted vote of its k nearest rows of
// memory (cosine similarity of L2-normalised features; k is capped at the
// memory's size) and returns the accuracy. Ties go to the smaller label.
// Neither input is modified. Queries are scored on cfg.Workers goroutines
// through pipeline.ForEach, one task per query; a panic in a worker comes
// back as the error, wrapping a *pipeline.PanicError with the stack.
func KNN(memory, queries Features, cfg KNNConfig) (KNNResult, error) {
	if err := cfg.Validate(); err != nil {
		return KNNResult{}, err
	}
	cfg = cfg.withDefaults()
	if err := memory.check("memory"); err != nil {
		return KNNResult{}, err
	}
	if err := queries.check("queries"); err != nil {
		return KNNResult{}, err
	}
	if memory.D != queries.D {
		return KNNResult{}, fmt.Errorf("eval: memory has %d-dimensional features, queries %d", memory.D, queries.D)
	}
	classes := int64(0)
	for _, l := range memory.Labels {
		classes = max(classes, l+1)
	}
	k := min(cfg.K, memory.N)
	mem := normalised(memory)
	qs := normalised(queries)
	res := KNNResult{Total: queries.N, Predictions: make([]int64, queries.N)}
	// One task per query: each writes only its own prediction, so the
	// result does not depend on the number of workers; w picks the scratch.
	type scratch struct {
		sims  []float32
		top   *topK
		votes []float64
	}
	scr := make([]scratch, min(cfg.Workers, queries.N))
	err := pipeline.ForEach(queries.N, cfg.Workers, func(w, q int) error {
		s := &scr[w]
		if s.top == nil {
			s.sims, s.top, s.votes = make([]float32, memory.N), newTopK(k), make([]float64, classes)
		}
		if testHookQuery != nil {
			testHookQuery(q)
		}
		row := qs[q*queries.D : (q+1)*queries.D]
		for i := range memory.N {
			s.sims[i] = dot(row, mem[i*memory.D:(i+1)*memory.D])
		}
		s.top.reset()
		for i, sim := range s.sims {
			s.top.push(sim, i)
		}
		clear(s.votes)
		for j := range s.top.n {
			s.votes[memory.Labels[s.top.idx[j]]] += math.Exp(float64(s.top.sim[j]) / *cfg.Temperature)
		}
		best := 0
		for c := range s.votes {
			if s.votes[c] > s.votes[best] {
				best = c
			}
		}
		res.Predictions[q] = int64(best)
		return nil
	})
	if err != nil {
		return KNNResult{}, fmt.Errorf("eval: knn: %w", err)
	}
	for q, p := range res.Predictions {
		if p == queries.Labels[q] {
			res.Correct++
		}
	}
	res.Accuracy = float64(res.Correct) / float64(res.Total)
	return res, nil
}

// testHookQuery, when set (by tests only), is called before each query is
// scored, on the worker that scores it.
var testHookQuery func(q int)

// normalised returns f's rows scaled to unit length (a zero row stays zero).
func normalised(f Features) []float32 {
	out := make([]float32, len(f.Data))
	for i := range f.N {
		row := f.Data[i*f.D : (i+1)*f.D]
		var ss float64
		for _, v := range row {
			ss += float64(v) * float64(v)
		}
		if ss == 0 {
			continue
		}
		inv := float32(1 / math.Sqrt(ss))
		for j, v := range row {
			out[i*f.D+j] = v * inv
		}
	}
	return out
}

func dot(a, b []float32) float32 {
	var s float32
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// topK keeps the k largest similarities seen, as a min-heap on sim.
type topK struct {
	k, n int
	sim  []float32
	idx  []int
}

func newTopK(k int) *topK { return &topK{k: k, sim: make([]float32, k), idx: make([]int, k)} }

func (t *topK) reset() { t.n = 0 }

// less orders the heap: smaller similarity first; at equal similarity the
// larger index is evicted first, so ties keep the earlier memory rows.
func (t *topK) less(a, b int) bool {
	return t.sim[a] < t.sim[b] || (t.sim[a] == t.sim[b] && t.idx[a] > t.idx[b])
}

func (t *topK) swap(a, b int) {
	t.sim[a], t.sim[b] = t.sim[b], t.sim[a]
	t.idx[a], t.idx[b] = t.idx[b], t.idx[a]
}

func (t *topK) push(s float32, i int) {
	if t.n < t.k {
		t.sim[t.n], t.idx[t.n] = s, i
		for c := t.n; c > 0; {
			p := (c - 1) / 2
			if !t.less(c, p) {
				break
			}
			t.swap(c, p)
			c = p
		}
		t.n++
		return
	}
	if s < t.sim[0] || (s == t.sim[0] && i > t.idx[0]) {
		return
	}
	t.sim[0], t.idx[0] = s, i
	for p := 0; ; {
		l, r, m := 2*p+1, 2*p+2, p
		if l < t.n && t.less(l, m) {
			m = l
		}
		if r < t.n && t.less(r, m) {
			m = r
		}
		if m == p {
			return
		}
		t.swap(p, m)
		p = m
	}
}
