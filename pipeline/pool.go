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
// In order-keeping mode at most 2×Workers+2 elements are inside the stage
// at once (read from its Inbox and not yet sent to its Outbox), so a
// stalled consumer holds back the producer; unordered mode holds at most
// Workers. The stage measures busy time per worker (StageMetrics.AddBusy)
// and records its worker count. Its goroutines have all exited when Run
// returns. fn is called concurrently from Workers goroutines; for
// per-worker state use MapWorkers.
func Map[In, Out any](fn func(ctx context.Context, v In) (Out, error), opts PoolOptions) Stage {
	return MapWorkers(func(int) func(context.Context, In) (Out, error) { return fn }, opts)
}

// MapWorkers is Map with per-worker state: newWorker(i) is called once by
// worker i (0 ≤ i < Workers), on that worker's goroutine, when the stage
// starts, and the function it returns is called only from that goroutine,
// so it may own scratch buffers without locks. A panic in newWorker is
// fatal like a panic in the function.
func MapWorkers[In, Out any](newWorker func(worker int) func(ctx context.Context, v In) (Out, error), opts PoolOptions) Stage {
	return &pool[In, Out]{newWorker: newWorker, opts: opts}
}

type pool[In, Out any] struct {
	newWorker func(int) func(context.Context, In) (Out, error)
	opts      PoolOptions
}

var _ Stage = (*pool[int, int])(nil)

// result is the fate of one element in order-keeping mode; the worker that
// processed it closes done after filling v or drop.
type result[Out any] struct {
	done chan struct{}
	v    Out
	drop bool
}

type job[Out any] struct {
	v   any
	res *result[Out]
}

func (p *pool[In, Out]) Run(ctx context.Context, in *Inbox, out *Outbox) error {
	workers := p.opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	m := stageMetrics(in, out)
	m.SetWorkers(workers)
	g, ctx := newGroup(ctx)
	if p.opts.Unordered {
		for w := range workers {
			g.Go(func() error { return p.unorderedWorker(ctx, w, in, out, m) })
		}
		return g.Wait()
	}

	inM, outM := in.Metrics(), out.Metrics()
	if inM == nil {
		inM = m
	}
	if outM == nil {
		outM = m
	}
	jobs := make(chan job[Out], workers)
	order := make(chan *result[Out], 2*workers)
	// The reader takes elements in order, reserves their place in order
	// (which bounds what is in flight), and hands them to the workers.
	g.Go(func() error {
		defer close(jobs)
		defer close(order)
		for {
			start := time.Now()
			v, ok, err := in.Recv(ctx)
			scaleWait(&inM.waitIn, start, workers)
			if err != nil {
				return err
			}
			if !ok {
				return nil
			}
			if err := checkType[In](v); err != nil {
				return err
			}
			r := &result[Out]{done: make(chan struct{})}
			select {
			case order <- r:
			case <-ctx.Done():
				return ctx.Err()
			}
			select {
			case jobs <- job[Out]{v: v, res: r}:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	})
	for w := range workers {
		g.Go(func() error {
			fn := p.newWorker(w)
			for {
				var j job[Out]
				var ok bool
				select {
				case j, ok = <-jobs:
				case <-ctx.Done():
					return ctx.Err()
				}
				if !ok {
					return nil
				}
				v, keep, err := call(ctx, fn, j.v, m)
				if err != nil {
					return err
				}
				j.res.v, j.res.drop = v, !keep
				close(j.res.done)
			}
		})
	}
	// The writer sends results in the order the reader reserved.
	g.Go(func() error {
		for r := range order {
			select {
			case <-r.done:
			case <-ctx.Done():
				return ctx.Err()
			}
			if r.drop {
				continue
			}
			start := time.Now()
			err := out.Send(ctx, r.v)
			scaleWait(&outM.waitOut, start, workers)
			if err != nil {
				return err
			}
		}
		return nil
	})
	return g.Wait()
}

func (p *pool[In, Out]) unorderedWorker(ctx context.Context, w int, in *Inbox, out *Outbox, m *StageMetrics) error {
	fn := p.newWorker(w)
	for {
		v, ok, err := in.Recv(ctx)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		if err := checkType[In](v); err != nil {
			return err
		}
		r, keep, err := call(ctx, fn, v, m)
		if err != nil {
			return err
		}
		if !keep {
			continue
		}
		if err := out.Send(ctx, r); err != nil {
			return err
		}
	}
}

// scaleWait counts the wait since start workers−1 more times. In
// order-keeping mode one goroutine receives and one sends for all the
// workers; while it waits the workers soon run out of work, so its wait is
// counted once per worker, which keeps busy + wait-in + wait-out near
// Wall × Workers.
func scaleWait(c *atomic.Int64, start time.Time, workers int) {
	if workers > 1 {
		c.Add(int64(time.Since(start)) * int64(workers-1))
	}
}

// call applies fn to v, timing it as busy time. keep is false for a
// sample skipped within the flow's limit; err is fatal.
func call[In, Out any](ctx context.Context, fn func(context.Context, In) (Out, error), v any, m *StageMetrics) (r Out, keep bool, err error) {
	x, _ := v.(In) // checked by checkType; the zero In for a nil v
	start := time.Now()
	r, err = fn(ctx, x)
	m.AddBusy(time.Since(start))
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

func protect(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = newPanicError(r)
		}
	}()
	return fn()
}
