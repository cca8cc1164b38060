package pipeline

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
)

// This file holds the fan-out of the project: every parallel loop (the
// encoder's replicas, the loss's rows, the kNN monitor's queries, the
// linear probe's blocks, feature extraction, the SGEMM kernel's tiles)
// runs its tasks through a Team, directly or through ForEach,
// ForEachContext or Parallel, so that a panic in any of them comes back to
// the caller as a *PanicError with the stack instead of killing the
// process, and no goroutine outlives the call. The stream runtime (Run,
// Map, Tee) has its own goroutines, one per stage or pool worker.

// Parallel calls f(0), …, f(n−1) at once, f(0) on the calling goroutine
// and the others on goroutines of their own, waits for all of them, and
// returns the error of the lowest i that failed (nil when none did). A
// panic in f becomes a *PanicError with its stack. Every f(i) is called,
// even after another failed, and since all run at once they may wait on
// each other. It is the fan-out of a step's fixed work, such as one
// replica per core; for a loop over more tasks than cores use ForEach, for
// a stream of elements use Map. It is ForEach(n, n, …).
func Parallel(n int, f func(i int) error) error {
	if n <= 0 {
		return nil
	}
	return ForEach(n, n, func(_, i int) error { return f(i) })
}

// ForEach calls f(w, i) for every i in [0, n) on min(workers, n)
// goroutines, the calling one included (workers ≤ 0: GOMAXPROCS), waits
// for all of them, and returns the error of the lowest i that failed (nil
// when none did). A panic in f becomes a *PanicError with the stack of
// the goroutine that panicked. Every task runs, even after another failed.
//
// w ∈ [0, min(workers, n)) names the goroutine that runs the task, 0 for
// the calling one, so that a caller can keep scratch space per worker;
// no two tasks with the same w run at once. When workers ≥ n every task
// has a goroutine of its own (task i runs with w = i, task 0 on the
// calling goroutine), so tasks may wait on each other; otherwise
// goroutine w runs task w first and then takes the next task not yet
// taken, in index order, until none is left. See Team for the contract
// under which a result does not depend on workers.
//
// ForEach allocates the Team it runs on; a loop that runs every step
// keeps a Team instead.
func ForEach(n, workers int, f func(w, i int) error) error {
	if n <= 0 {
		return nil
	}
	return new(Team).Run(n, workers, f)
}

// ForEachContext is ForEach whose tasks share a context derived from ctx
// that is cancelled, with the error as its cause, as soon as a task fails
// or panics, so that the others (a producer blocked on a send, say) can
// stop. It returns the error of the lowest i that failed, except that an
// error that Is context.Canceled, the way a task reports that it stopped
// because of the cancellation, is replaced by the cancellation's cause:
// the first failure's error (or the cause of ctx's own cancellation, when
// it has one).
func ForEachContext(ctx context.Context, n, workers int, f func(ctx context.Context, w, i int) error) error {
	if n <= 0 {
		return nil
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	t := &Team{cancel: cancel}
	err := t.Run(n, workers, func(w, i int) error { return f(ctx, w, i) })
	if errors.Is(err, context.Canceled) {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			return cause
		}
	}
	return err
}

// Team is the reusable form of ForEach, for a loop that runs every step:
// make it once (the zero value is ready), keep it, and call Run as often
// as needed. Run starts its goroutines afresh and waits for them, so a
// Team holds no goroutine between calls and needs no Close.
//
// # Results that do not depend on the worker count
//
// A Team (and ForEach, ForEachContext, Parallel) decides only which
// goroutine runs a task and when; the caller decides what a task is. For
// the result to be the same bytes for 1, 2 or 64 workers (DESIGN.md,
// Determinism), a caller must
//
//   - split the work into tasks that the problem fixes, not the worker
//     count (the linear probe's blocks of 2048 rows, one kNN query), or
//     split it along boundaries that the computation already has, so that
//     every output is computed by the same operations however the split
//     falls (the loss's ranges of rows start at multiples of its 4-row
//     blocks; SGEMM splits by whole micro-tiles);
//   - have task i write only its own outputs, and combine the tasks'
//     partial results afterwards, on one goroutine, in index order;
//   - use the worker index w that a task receives only to pick scratch
//     space, never to decide a result.
//
// # Use and cost
//
// A Team is not safe for concurrent use: one Run at a time (a second
// concurrent Run, or a task that calls Run on its own Team, panics). It
// must not be copied after its first Run.
//
// Cost: Run allocates nothing once the Team has run with as many
// goroutines before and the runtime has exited goroutines to reuse (keep
// f in a variable made once: a method value or closure built at each call
// allocates); it starts min(workers, n)−1 goroutines, and each task costs
// an indirect call, a deferred recover and an atomic add. BenchmarkTeamRun, a Run of empty tasks on 2
// goroutines, measured on 2 cores of an AMD EPYC: about 1 µs for 2 tasks,
// 6 µs for 256.
type Team struct {
	busy atomic.Bool

	// The current Run's.
	f    func(w, i int) error
	n    int
	next atomic.Int64 // the next task to hand out, when n > goroutines
	wg   sync.WaitGroup

	bodies []func()                // goroutine w's function, made once: go bodies[w]() allocates nothing
	cancel context.CancelCauseFunc // ForEachContext's, called on each failure

	mu    sync.Mutex
	err   error // the failure of the lowest task so far
	errAt int   // its index, n when none
}

// Run is ForEach(n, workers, f) on t's goroutines.
func (t *Team) Run(n, workers int, f func(w, i int) error) error {
	if n <= 0 {
		return nil
	}
	if f == nil {
		panic("pipeline: Team.Run with a nil function")
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	g := min(workers, n)
	if !t.busy.CompareAndSwap(false, true) {
		panic("pipeline: Team.Run called while the Team runs")
	}
	t.f, t.n, t.err, t.errAt = f, n, nil, n
	t.next.Store(int64(g))
	for len(t.bodies) < g {
		w := len(t.bodies)
		t.bodies = append(t.bodies, func() {
			defer t.wg.Done()
			t.work(w)
		})
	}
	t.wg.Add(g - 1)
	for w := 1; w < g; w++ {
		go t.bodies[w]()
	}
	t.work(0)
	t.wg.Wait()
	err := t.err
	t.f, t.err = nil, nil // drop the caller's references
	t.busy.Store(false)
	return err
}

// work runs task w, then the tasks not yet taken, on goroutine w.
func (t *Team) work(w int) {
	t.call(w, w)
	for {
		i := int(t.next.Add(1) - 1)
		if i >= t.n {
			return
		}
		t.call(w, i)
	}
}

// call runs task i on goroutine w, recording its error or panic.
func (t *Team) call(w, i int) {
	defer func() {
		if v := recover(); v != nil {
			t.fail(i, newPanicError(v))
		}
	}()
	if err := t.f(w, i); err != nil {
		t.fail(i, err)
	}
}

// fail records task i's err, keeping the lowest index's.
func (t *Team) fail(i int, err error) {
	t.mu.Lock()
	if i < t.errAt {
		t.err, t.errAt = err, i
	}
	t.mu.Unlock()
	if t.cancel != nil {
		t.cancel(err) // the first call sets the cause; later ones do nothing
	}
}
