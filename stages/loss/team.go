package loss

import (
	"fmt"
	"runtime"

	"github.com/contrastream/contrastream/pipeline"
)

// MaxWorkers bounds the Workers field of the configs.
const MaxWorkers = 256

// phaser is a loss core whose work splits into phases over rows: phase p
// of rows [lo, hi) on worker w touches only those rows' outputs and worker
// w's scratch.
type phaser interface {
	phase(p, w, lo, hi int)
}

// team runs a phaser's phases on up to workers goroutines, the calling
// one included, through a pipeline.Team (the project's one fan-out, which
// returns a worker's panic as a *pipeline.PanicError with its stack). A
// phase of n rows is split into w ≤ workers contiguous ranges, one task
// each. Ranges start at multiples of 4, so that the 4-row blocks of gemmT,
// and therefore every rounding, are the same for any number of workers:
// the split follows blocks the computation already has, which is
// pipeline.Team's contract for worker-count independent results. The
// task function is made once, so that a phase allocates nothing once the
// runtime has goroutines to reuse. The zero team runs everything on the
// calling goroutine.
type team struct {
	workers int
	r       phaser
	pt      pipeline.Team
	task    func(w, i int) error // t.run's task, made on first use
	p       int                  // the current phase
	n       int                  // its rows
	blocks  int                  // its 4-row blocks
	w       int                  // its tasks
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
	if t.r == nil {
		panic("loss: team without a phaser")
	}
	if t.task == nil {
		t.task = t.range1
	}
	t.p, t.n = p, n
	t.blocks = (n + 3) / 4
	t.w = max(1, min(t.workers, t.blocks))
	if err := t.pt.Run(t.w, t.w, t.task); err != nil {
		return fmt.Errorf("loss: %w", err)
	}
	return nil
}

// testHookTask, when set (by tests only), is called at the start of each
// task with the phase and the task's first row.
var testHookTask func(phase, lo int)

// range1 runs task i of the current phase: rows [lo, hi) on worker i.
func (t *team) range1(_, i int) error {
	lo := min(t.n, 4*(t.blocks*i/t.w))
	hi := min(t.n, 4*(t.blocks*(i+1)/t.w))
	if testHookTask != nil {
		testHookTask(t.p, lo)
	}
	if lo < hi {
		t.r.phase(t.p, i, lo, hi)
	}
	return nil
}

// validateWorkers returns a *pipeline.FieldError unless 0 ≤ w ≤ MaxWorkers.
func validateWorkers(w int) error {
	if w < 0 || w > MaxWorkers {
		return fieldError("workers", fmt.Sprintf("must be 0 (GOMAXPROCS) to %d, got %d", MaxWorkers, w))
	}
	return nil
}
