package loss

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
)

// MaxWorkers bounds the Workers field of the configs.
const MaxWorkers = 256

// phaser is a loss core whose work splits into phases over rows: phase p
// of rows [lo, hi) on worker w touches only those rows' outputs and worker
// w's scratch.
type phaser interface {
	phase(p, w, lo, hi int)
}

// team runs a phaser's phases on up to workers goroutines: the calling one
// and workers−1 started per phase. The goroutines' functions are made
// once, so that a phase allocates nothing once the runtime has goroutines
// to reuse. Row ranges start at multiples of 4, so that the 4-row blocks
// of gemmT, and therefore every rounding, are the same for any number of
// workers. The zero team runs everything on the calling goroutine.
type team struct {
	workers int
	r       phaser
	tasks   []func()
	lo, hi  []int
	p       int
	wg      sync.WaitGroup
	mu      sync.Mutex
	err     error
}

// newTeam returns a team of workers goroutines (0: GOMAXPROCS) for r.
func newTeam(workers int, r phaser) team {
	if workers == 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	return team{workers: min(workers, MaxWorkers), r: r}
}

// run runs phase p over rows [0, n), and returns a panic of a worker as
// an error with its stack.
func (t *team) run(p, n int) error {
	blocks := (n + 3) / 4
	w := max(1, min(t.workers, blocks))
	if w == 1 || t.r == nil {
		if t.r == nil {
			panic("loss: team without a phaser")
		}
		t.err = nil
		t.lo, t.hi = grow(t.lo, 1), grow(t.hi, 1)
		t.p, t.lo[0], t.hi[0] = p, 0, n
		t.task(0)
		return t.err
	}
	if len(t.tasks) < w {
		t.tasks = make([]func(), w)
		for i := range t.tasks {
			t.tasks[i] = func() {
				defer t.wg.Done()
				t.task(i)
			}
		}
	}
	t.lo, t.hi = grow(t.lo, w), grow(t.hi, w)
	for i := range w {
		t.lo[i] = min(n, 4*(blocks*i/w))
		t.hi[i] = min(n, 4*(blocks*(i+1)/w))
	}
	t.p, t.err = p, nil
	t.wg.Add(w - 1)
	for i := 1; i < w; i++ {
		go t.tasks[i]()
	}
	t.task(0)
	t.wg.Wait()
	return t.err
}

// task runs worker i's range of the current phase, recovering a panic.
func (t *team) task(i int) {
	defer func() {
		if v := recover(); v != nil {
			err := fmt.Errorf("loss: panic in worker %d: %v\n%s", i, v, debug.Stack())
			t.mu.Lock()
			if t.err == nil {
				t.err = err
			}
			t.mu.Unlock()
		}
	}()
	if t.lo[i] < t.hi[i] {
		t.r.phase(t.p, i, t.lo[i], t.hi[i])
	}
}

// validateWorkers returns a *pipeline.FieldError unless 0 ≤ w ≤ MaxWorkers.
func validateWorkers(w int) error {
	if w < 0 || w > MaxWorkers {
		return fieldError("workers", fmt.Sprintf("must be 0 (GOMAXPROCS) to %d, got %d", MaxWorkers, w))
	}
	return nil
}
