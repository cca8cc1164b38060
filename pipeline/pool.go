package pipeline

import (
	"context"
	"fmt"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// PoolOptions configures a worker pool. The zero value means the defaults.
type PoolOptions struct {
	// Workers is the number of goroutines that call the function. Zero or
	// less means runtime.GOMAXPROCS(0), read when the stage starts.
	Workers int
	// Unordered lets results leave in the order they finish. The default,
	// false, keeps input order.
	Unordered bool
	// Chunk, in order-keeping mode, lets a worker take up to Chunk
	// consecutive elements at once: those already waiting in the Inbox
	// when it takes the first (it never waits to fill a chunk). Each hand-
	// off between the pool's goroutines costs a few microseconds; when fn
	// takes about as long, chunks let the workers scale. Zero or less means
	// 1. The bound on the elements inside the stage grows to
	// (2×Workers+2)×Chunk.
	Chunk int
}

// Map returns a stage that applies fn to every element on a pool of
// workers:
//
//	in  -- 1 -- 2 ---- 3 -- 4 ------ 5 --
//	[ ---- fn on PoolOptions.Workers ---- ]
//	out ---- 1' - 2' ----- 3' - 4' ---- 5'   (input order, by default)
//
// An element that is not an In is a fatal error naming both types. An
// error from fn for which IsSkip holds drops that element (the others keep
// their order) and is counted with ReportSkip; any other error, or a panic
// in fn (returned as a *PanicError with the stack), is fatal and cancels
// the other workers.
//
// In order-keeping mode at most 2×Workers+2 elements (chunks, with
// PoolOptions.Chunk) are inside the stage at once (read from its Inbox and not yet sent to its Outbox), so a
// stalled consumer holds back the producer; unordered mode holds at most
// Workers. Its goroutines have all exited when Run returns. fn is called
// concurrently from Workers goroutines; for per-worker state use
// MapWorkers.
//
// The stage records its worker count and splits each worker's time, from
// the stage's start to its end, into busy (in fn), waiting for input
// (WaitIn: blocked receiving an element, or out of input while the other
// workers finish) and waiting for output (WaitOut: blocked until its result
// is accepted: by the Outbox in unordered mode; in order-keeping mode by
// the writer that restores input order, which takes a result once the
// elements before it have left, at most Workers results ahead). So for a
// pool Busy+WaitIn+WaitOut ≈ Wall×Workers.
func Map[In, Out any](fn func(ctx context.Context, v In) (Out, error), opts PoolOptions) Stage {
	return MapWorkers(func(int) func(context.Context, In) (Out, error) { return fn }, opts)
}

// MapWorkers is Map with per-worker state: newWorker(i) is called once by
// worker i (0 ≤ i < Workers), on that worker's goroutine, when the stage
// starts, and the function it returns is called only from that goroutine,
// so it may own scratch buffers without locks. A panic in newWorker is
// fatal like a panic in the function. Time spent in newWorker counts as
// busy.
func MapWorkers[In, Out any](newWorker func(worker int) func(ctx context.Context, v In) (Out, error), opts PoolOptions) Stage {
	return &pool[In, Out]{newWorker: newWorker, opts: opts}
}

type pool[In, Out any] struct {
	newWorker func(int) func(context.Context, In) (Out, error)
	opts      PoolOptions
}

var _ Stage = (*pool[int, int])(nil)

// result is the fate of one element in order-keeping mode. The worker that
// processes it fills v or drop, waits for gate, and closes done; the writer
// closes taken when it takes the result to send it.
type result[Out any] struct {
	gate  <-chan struct{} // the taken of the result Workers places earlier
	done  chan struct{}
	taken chan struct{}
	vs    []Out  // one per element of the chunk
	keep  []bool // false: the element was skipped
}

// job is a chunk of consecutive elements for one worker.
type job[Out any] struct {
	vs  []any
	res *result[Out]
}

// closedChan is a gate that is open from the start.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

func (p *pool[In, Out]) Run(ctx context.Context, in *Inbox, out *Outbox) error {
	workers := p.opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	m := stageMetrics(in, out)
	m.SetWorkers(workers)
	m.measured.Store(true)
	g, ctx := newGroup(ctx)
	// Each worker, once its input is exhausted, idles until the others are
	// done too, so that its time spans the stage's.
	var left atomic.Int64
	left.Store(int64(workers))
	allDone := make(chan struct{})
	finished := func() {
		if left.Add(-1) == 0 {
			close(allDone)
		}
	}
	if p.opts.Unordered {
		for w := range workers {
			g.Go(func() error { return p.unorderedWorker(ctx, w, in, out, m, finished, allDone) })
		}
		return g.Wait()
	}

	// jobs is unbuffered and the reader never blocks on order (it has room
	// for every result not yet taken: at most Workers held by workers,
	// Workers waiting for the writer, and the reader's), so a worker waits
	// for a job only while the reader waits for input.
	jobs := make(chan job[Out])
	order := make(chan *result[Out], 2*workers+1)
	written := make(chan struct{})
	// The reader takes elements in order, queues their results for the
	// writer, and hands them to the workers.
	g.Go(func() error {
		defer close(jobs)
		defer close(order)
		gates := make([]<-chan struct{}, workers) // taken of the last Workers results
		for i := range gates {
			gates[i] = closedChan
		}
		chunk := max(1, p.opts.Chunk)
		for seq := 0; ; seq++ {
			v, ok, err := in.recv(ctx, false)
			if err != nil {
				return err
			}
			if !ok {
				return nil
			}
			vs := make([]any, 1, chunk)
			vs[0] = v
			for len(vs) < chunk {
				v, ok := in.tryRecv()
				if !ok {
					break // nothing waiting, or the input is exhausted: the next recv says which
				}
				vs = append(vs, v)
			}
			for _, v := range vs {
				if err := checkType[In](v); err != nil {
					return err
				}
			}
			r := &result[Out]{gate: gates[seq%workers], done: make(chan struct{}), taken: make(chan struct{})}
			gates[seq%workers] = r.taken
			select {
			case order <- r:
			case <-ctx.Done():
				return ctx.Err()
			}
			select {
			case jobs <- job[Out]{vs: vs, res: r}:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	})
	for w := range workers {
		g.Go(func() error {
			c := newWorkerClock()
			fn := p.newWorker(w)
			c.charge(&m.busy)
			for {
				var j job[Out]
				var ok bool
				select {
				case j, ok = <-jobs:
				case <-ctx.Done():
					c.charge(&m.waitIn)
					return ctx.Err()
				}
				c.charge(&m.waitIn)
				if !ok {
					break
				}
				j.res.vs, j.res.keep = make([]Out, len(j.vs)), make([]bool, len(j.vs))
				for i, v := range j.vs {
					var err error
					if j.res.vs[i], j.res.keep[i], err = call(ctx, fn, v); err != nil {
						c.charge(&m.busy)
						return err
					}
				}
				c.charge(&m.busy)
				// Hand the result on once the writer has taken the one
				// Workers places earlier: that bounds the results
				// waiting to be reordered.
				if err := c.waitFor(ctx, j.res.gate, &m.waitOut); err != nil {
					return err
				}
				close(j.res.done)
			}
			finished()
			if err := c.waitFor(ctx, allDone, &m.waitIn); err != nil {
				return err
			}
			return c.waitFor(ctx, written, &m.waitOut)
		})
	}
	// The writer sends results in the order the reader queued them.
	g.Go(func() error {
		defer close(written)
		for r := range order {
			select {
			case <-r.done:
			case <-ctx.Done():
				return ctx.Err()
			}
			close(r.taken)
			for i, v := range r.vs {
				if !r.keep[i] {
					continue
				}
				if err := out.send(ctx, v, false); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return g.Wait()
}

func (p *pool[In, Out]) unorderedWorker(ctx context.Context, w int, in *Inbox, out *Outbox, m *StageMetrics, finished func(), allDone <-chan struct{}) error {
	c := newWorkerClock()
	fn := p.newWorker(w)
	c.charge(&m.busy)
	for {
		v, ok, err := in.recv(ctx, false)
		c.charge(&m.waitIn)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if err := checkType[In](v); err != nil {
			return err
		}
		r, keep, err := call(ctx, fn, v)
		c.charge(&m.busy)
		if err != nil {
			return err
		}
		if !keep {
			continue
		}
		err = out.send(ctx, r, false)
		c.charge(&m.waitOut)
		if err != nil {
			return err
		}
	}
	finished()
	return c.waitFor(ctx, allDone, &m.waitIn)
}

// workerClock splits one worker's time into busy, wait-in and wait-out:
// each charge adds the time since the previous one to one counter, so the
// three add up to the worker's wall time. A clock belongs to one goroutine.
type workerClock struct {
	last time.Time
}

func newWorkerClock() *workerClock { return &workerClock{last: time.Now()} }

// charge adds the time since the last charge to c.
func (w *workerClock) charge(c *atomic.Int64) {
	now := time.Now()
	c.Add(int64(now.Sub(w.last)))
	w.last = now
}

// waitFor blocks until ch is closed or ctx is done, charging the wait to c.
func (w *workerClock) waitFor(ctx context.Context, ch <-chan struct{}, c *atomic.Int64) error {
	var err error
	select {
	case <-ch:
	case <-ctx.Done():
		err = ctx.Err()
	}
	w.charge(c)
	return err
}

// call applies fn to v. keep is false for a sample skipped within the
// flow's limit; err is fatal.
func call[In, Out any](ctx context.Context, fn func(context.Context, In) (Out, error), v any) (r Out, keep bool, err error) {
	x, _ := v.(In) // checked by checkType; the zero In for a nil v
	r, err = fn(ctx, x)
	if err == nil {
		return r, true, nil
	}
	if IsSkip(err) {
		if err := ReportSkip(ctx, err); err != nil {
			return r, false, err
		}
		return r, false, nil
	}
	return r, false, err
}

// checkType reports an element that is not an In. A nil element passes when
// In can be nil (an interface, pointer, slice, map, channel or function).
func checkType[In any](v any) error {
	if _, ok := v.(In); ok {
		return nil
	}
	t := reflect.TypeFor[In]()
	if v == nil {
		switch t.Kind() {
		case reflect.Interface, reflect.Pointer, reflect.Slice, reflect.Map, reflect.Chan, reflect.Func:
			return nil
		}
		return fmt.Errorf("pipeline: Map got a nil element, want %v", t)
	}
	return fmt.Errorf("pipeline: Map got an element of type %T, want %v", v, t)
}

// group runs goroutines under one context, cancels it on the first error
// (or panic, returned as a *PanicError) and returns that error from Wait,
// as errgroup does.
type group struct {
	wg     sync.WaitGroup
	cancel context.CancelCauseFunc
	once   sync.Once
	err    error
}

func newGroup(ctx context.Context) (*group, context.Context) {
	ctx, cancel := context.WithCancelCause(ctx)
	return &group{cancel: cancel}, ctx
}

func (g *group) Go(fn func() error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := protect(fn); err != nil {
			g.once.Do(func() {
				g.err = err
				g.cancel(err)
			})
		}
	}()
}

func (g *group) Wait() error {
	g.wg.Wait()
	g.cancel(nil)
	return g.err
}
