package encode

import (
	"errors"
	"fmt"
	"math"
	"sync"
)

// # BatchNorm groups
//
// A BatchNorm layer of an encoder that a Pool runs over several shards
// normalises every image of a group (by default the whole batch through
// that encoder in the step) with the group's statistics, whatever the
// number of shards. The layer's op in each shard replica of the group
// shares one bnGroup: each op writes its shard's per-image partial sums
// into the group's slots (in the group's image order), waits at the
// group's barrier, and reads the statistics that the last op to arrive
// computed once from all the slots, image by image in order. The result
// is the same bytes whichever shard arrives last and however many shards
// compute at once. The backward pass does the same with Σdy and Σdy·x̂.
//
// A shard's goroutine holds one of the gang's worker tokens while it
// computes and gives it back while it waits at a barrier, so that fewer
// workers than shards never deadlock. A shard that fails breaks every
// barrier of the gang: the shards waiting there, and those that arrive
// later in the pass, return errBroken instead of waiting for it.

// errBroken is what a shard gets at a barrier when another shard of the
// pass has failed.
var errBroken = errors.New("encode: another shard of the step failed")

// gang is the shard goroutines of a Pool's pass: the semaphore of worker
// tokens and every BatchNorm group, to break them when a shard fails.
type gang struct {
	sem    chan struct{} // workers tokens; nil: no limit
	mu     sync.Mutex
	groups []*bnGroup
	cause  error // the first failure of the pass
}

func newGang(workers int) *gang {
	return &gang{sem: make(chan struct{}, workers)}
}

func (g *gang) acquire() {
	if g != nil && g.sem != nil {
		g.sem <- struct{}{}
	}
}

func (g *gang) release() {
	if g != nil && g.sem != nil {
		<-g.sem
	}
}

// add registers a group of the gang.
func (g *gang) add(b *bnGroup) {
	g.mu.Lock()
	g.groups = append(g.groups, b)
	g.mu.Unlock()
}

// reset readies the barriers for a pass: no goroutine of the gang runs.
func (g *gang) reset() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cause = nil
	for _, b := range g.groups {
		b.mu.Lock()
		b.arrived, b.broken = 0, false
		if b.phase.closed {
			b.phase = newPhase()
		}
		b.mu.Unlock()
	}
}

// abort records err as the pass's failure (the first one counts) and
// breaks every barrier.
func (g *gang) abort(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cause == nil {
		g.cause = err
	}
	for _, b := range g.groups {
		b.mu.Lock()
		b.broken = true
		b.phase.finish(errBroken)
		b.mu.Unlock()
	}
}

// failure is the first failure of the pass, or nil.
func (g *gang) failure() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cause
}

// phase is one round of a barrier: done closes when the last party has
// arrived and computed the group's sums (err nil) or when the barrier
// breaks (err errBroken).
type phase struct {
	done   chan struct{}
	err    error
	closed bool
}

func newPhase() *phase { return &phase{done: make(chan struct{})} }

// finish ends the phase with err, once; the caller holds its group's mu.
func (p *phase) finish(err error) {
	if !p.closed {
		p.err, p.closed = err, true
		close(p.done)
	}
}

// bnPart is one image's and channel's backward sums: Σdy'·(x−μ) and Σdy'.
type bnPart struct{ g, b float64 }

// bnGroup is what the ops of one BatchNorm layer share across the shard
// replicas of one group: the per-image partial sums of its images in the
// group's order, the statistics computed from them, and the barrier.
// A group of one party (a lone Replica) has no barrier: its op computes
// the statistics itself.
type bnGroup struct {
	gang    *gang // nil for one party
	parties int   // shards in the group
	shard   int   // images per shard
	c, hw   int
	// running is the layer's running statistics (updated in place), moved
	// once per training step by this group, or nil when another group
	// of the layer moves them.
	runMean, runVar []float32
	running         bool
	momentum, eps   float64

	mu      sync.Mutex
	arrived int
	broken  bool
	phase   *phase

	// Forward: each image's statistics per channel (image-major), and the
	// group's mean and 1/σ.
	seg          []segStat
	mean, invStd []float32
	// Backward: each image's sums per channel, and the group's dγ
	// (Σdy'·x̂) and dβ (Σdy').
	part   []bnPart
	sdg    []float64
	sdb    []float64
	dg, db []float32
}

// newBNGroup makes the group of parties shards of shard images each for a
// layer of c channels of hw positions. runMean and runVar are the layer's
// running statistics; the group moves them when running is set.
func newBNGroup(gg *gang, parties, shard, c, hw int, runMean, runVar []float32, running bool) *bnGroup {
	images := parties * shard
	b := &bnGroup{
		parties: parties, shard: shard, c: c, hw: hw,
		runMean: runMean, runVar: runVar, running: running,
		momentum: BNMomentum, eps: BNEps,
		phase: newPhase(),
		seg:   make([]segStat, images*c), mean: make([]float32, c), invStd: make([]float32, c),
		part: make([]bnPart, images*c), sdg: make([]float64, c), sdb: make([]float64, c),
		dg: make([]float32, c), db: make([]float32, c),
	}
	if parties > 1 {
		b.gang = gg
		gg.add(b)
	}
	return b
}

// images is the number of images of the group.
func (b *bnGroup) images() int { return b.parties * b.shard }

// segs returns member's slots of the forward statistics.
func (b *bnGroup) segs(member int) []segStat {
	n := b.shard * b.c
	return b.seg[member*n : (member+1)*n]
}

// parts returns member's slots of the backward sums.
func (b *bnGroup) parts(member int) []bnPart {
	n := b.shard * b.c
	return b.part[member*n : (member+1)*n]
}

// wait is the barrier: once every party has arrived, the last one calls
// last (a panic in it breaks the barrier and comes back as an error), and
// then every party returns. While it waits, a party gives its worker token
// back. A broken barrier returns errBroken at once.
func (b *bnGroup) wait(last func()) error {
	if b.parties == 1 {
		last()
		return nil
	}
	b.mu.Lock()
	if b.broken {
		b.mu.Unlock()
		return errBroken
	}
	ph := b.phase
	b.arrived++
	if b.arrived < b.parties {
		b.mu.Unlock()
		b.gang.release()
		<-ph.done
		b.gang.acquire()
		return ph.err
	}
	b.mu.Unlock()
	err := protectLast(last)
	b.mu.Lock()
	if ph == b.phase && !ph.closed {
		b.arrived, b.phase = 0, newPhase()
	}
	ph.finish(err)
	b.mu.Unlock()
	if err == nil && ph.err != nil {
		err = ph.err // broken while computing
	}
	return err
}

// protectLast calls f, turning a panic into an error.
func protectLast(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("encode: BatchNorm group: panic: %v", r)
		}
	}()
	f()
	return nil
}

// forwardStats sets the group's mean and 1/σ per channel from the
// per-image statistics of all its images, and moves the running
// statistics when the group owns them. The squared deviations of an image
// from the channel's mean μ are those from its own mean m plus
// 2(m−μ)·Σ(x−m) + H·W·(m−μ)² (Chan et al.'s pairwise update), in float64,
// added image by image in the group's order.
func (b *bnGroup) forwardStats() {
	n, c, hw := b.images(), b.c, float64(b.hw)
	m := float64(n * b.hw)
	for ch := 0; ch < c; ch++ {
		var s float64
		for i := 0; i < n; i++ {
			s += b.seg[i*c+ch].sum
		}
		mean := s / m
		var ss float64
		for i := 0; i < n; i++ {
			g := b.seg[i*c+ch]
			d := float64(g.mean) - mean
			ss += g.sqDev + 2*d*(g.sum-hw*float64(g.mean)) + hw*d*d
		}
		ss = max(ss, 0)
		b.mean[ch] = float32(mean)
		b.invStd[ch] = float32(1 / math.Sqrt(ss/m+b.eps))
		if b.running {
			b.runMean[ch] = float32((1-b.momentum)*float64(b.runMean[ch]) + b.momentum*mean)
			b.runVar[ch] = float32((1-b.momentum)*float64(b.runVar[ch]) + b.momentum*ss/(m-1))
		}
	}
}

// backwardSums sets the group's dγ and dβ per channel from the per-image
// sums of all its images, added in float64 image by image in the group's
// order.
func (b *bnGroup) backwardSums() {
	sumParts(b.part, b.images(), b.c, b.sdg, b.sdb)
	for ch := range b.dg {
		b.dg[ch], b.db[ch] = float32(b.sdg[ch])*b.invStd[ch], float32(b.sdb[ch])
	}
}

// sumParts sums n images' parts per channel, image by image in order,
// into sg and sb.
func sumParts(part []bnPart, n, c int, sg, sb []float64) {
	clear(sg)
	clear(sb)
	for i := 0; i < n; i++ {
		for ch := 0; ch < c; ch++ {
			p := part[i*c+ch]
			sg[ch] += p.g
			sb[ch] += p.b
		}
	}
}
