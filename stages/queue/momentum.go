package queue

import (
	"fmt"
	"math"

	"github.com/contrastream/contrastream/stages/optim"
)

// The momentum schedules, by their names in Config.MomentumSchedule.
const (
	Constant = "constant"
	Cosine   = "cosine"
)

// DefaultMomentum is the key encoder's default m (MoCo's 0.99).
const DefaultMomentum = 0.99

// MomentumUpdate sets key ← m·key + (1−m)·query element by element, in
// place: the momentum encoder's update ξ ← m·ξ + (1−m)·θ. Like the
// reference's pk.mul_(m).add_(pq, alpha=1−m), it rounds m and 1−m (taken
// in float64) to float32 once and each product to float32. It panics when
// the lengths differ.
func MomentumUpdate(key, query []float32, m float64) {
	if len(key) != len(query) {
		panic(fmt.Sprintf("queue: momentum update of %d key values from %d query values", len(key), len(query)))
	}
	mf, om := float32(m), float32(1-m)
	query = query[:len(key)]
	for i := range key {
		key[i] = float32(mf*key[i]) + float32(om*query[i])
	}
}

// MomentumUpdateParams applies MomentumUpdate to every key param from the
// query param at the same position, which must have the same name and
// length. It checks them all before changing anything. Only Data is read
// and written; the key params need no Grad. Pass the trainable parameters
// only, as the reference does (k.parameters()): BatchNorm running
// statistics are not averaged, the key encoder's own forward passes
// update them.
func MomentumUpdateParams(key, query []*optim.Param, m float64) error {
	if err := match(key, query); err != nil {
		return err
	}
	for i, k := range key {
		MomentumUpdate(k.Data, query[i].Data, m)
	}
	return nil
}

// CopyParams copies the query params' values into the key params (same
// names and lengths, position by position): the key encoder's start.
func CopyParams(key, query []*optim.Param) error {
	if err := match(key, query); err != nil {
		return err
	}
	for i, k := range key {
		copy(k.Data, query[i].Data)
	}
	return nil
}

func match(key, query []*optim.Param) error {
	if len(key) != len(query) {
		return fmt.Errorf("queue: %d key params for %d query params", len(key), len(query))
	}
	for i, k := range key {
		q := query[i]
		if k.Name != q.Name || len(k.Data) != len(q.Data) {
			return fmt.Errorf("queue: key param %d is %q of %d values, query param %d is %q of %d", i, k.Name, len(k.Data), i, q.Name, len(q.Data))
		}
	}
	return nil
}

// Momentum gives the key encoder's m at each step of a run of T steps:
// constant m₀, or BYOL's cosine rise towards 1,
//
//	m(t) = 1 − (1 − m₀)·(cos(π·t/T) + 1)/2,
//
// which is m₀ at t = 0, (1 + m₀)/2 at t = T/2 and 1 at t ≥ T. A Momentum
// is immutable and safe for concurrent use.
type Momentum struct {
	m0     float64
	cosine bool
	total  int
}

// NewMomentum returns cfg's momentum schedule for a run of total steps
// (needed, ≥ 1, by the cosine schedule only; 0 is fine for constant).
func (c Config) NewMomentum(total int) (*Momentum, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	m := &Momentum{m0: DefaultMomentum, cosine: c.MomentumSchedule == Cosine, total: total}
	if c.Momentum != nil {
		m.m0 = *c.Momentum
	}
	if total < 0 || (m.cosine && total == 0) {
		return nil, fmt.Errorf("queue: the cosine momentum schedule needs the run's number of steps, got %d", total)
	}
	return m, nil
}

// At returns m at step t (a negative t counts as 0).
func (s *Momentum) At(t int) float64 {
	if !s.cosine {
		return s.m0
	}
	t = min(max(t, 0), s.total)
	return 1 - (1-s.m0)*(math.Cos(math.Pi*float64(t)/float64(s.total))+1)/2
}
