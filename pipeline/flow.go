package pipeline

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a Flow. The zero value means the defaults.
type Options struct {
	// Buffer is the capacity of the channel between two stages. Zero means
	// the default, 2; a negative value makes the channels unbuffered. The
	// buffers (with the in-flight bound of the pools) bound how far a stage
	// can run ahead of the next one.
	Buffer int
	// MaxBadSamples is how many per-sample failures (SkipError) the flow
	// tolerates; one more is fatal. Zero (the default) tolerates none; a
	// negative value tolerates any number.
	MaxBadSamples int
}

// DefaultBuffer is the channel capacity between stages when
// Options.Buffer is zero.
const DefaultBuffer = 2

// ErrDownstreamDone is the cause (see context.Cause) with which the runner
// cancels the stages upstream of a stage that returned nil before its input
// was exhausted, such as a sink that stops after N elements. Those stages
// returning context.Canceled then is not an error.
var ErrDownstreamDone = errors.New("pipeline: a downstream stage ended")

// Flow is a chain of stages connected by bounded channels, run under one
// context: the first stage added is the source (its Inbox is exhausted),
// the last is the sink (its Outbox discards, counting).
//
// Build a Flow with New and Add from one goroutine, then call Run once.
// Metrics and Skips are safe to call from any goroutine, also while Run is
// running. A Flow costs one goroutine per stage (plus the stage's own
// workers) and one channel of Options.Buffer elements between stages.
//
// # Ending
//
//   - Normal end: the source returns nil, the runner closes its output
//     channel, each stage in turn sees its input exhausted and returns nil.
//   - Fatal error: the first stage that returns an error (or panics)
//     cancels the context of every stage; Run waits for all of them and
//     returns that first error as `stage "name": err`. Errors that the
//     cancellation itself causes later are not reported.
//   - Parent cancellation: Run returns an error for which errors.Is(err,
//     ctx.Err()) holds.
//   - Early end: a stage that returns nil while its upstream is still
//     producing (a sink that wants only N elements) cancels the stages
//     upstream of it, with cause ErrDownstreamDone, rather than draining
//     them: a source may be endless, so draining might never end. Those
//     stages' context.Canceled errors are ignored, the stages downstream
//     of it see a normal end, and Run returns nil.
//
// In every case Run returns only after every stage has returned; stages
// must honour their context (Inbox.Recv and Outbox.Send do) and wait for
// any goroutines they start, as the pools of this package do. The runner
// recovers a panic on a stage's own goroutine; a stage that starts more
// goroutines must recover theirs (Map and MapWorkers do).
type Flow struct {
	opts  Options
	skips *Skips

	mu      sync.Mutex // guards stages and err before Run
	stages  []*flowStage
	err     error // a construction error, returned by Run
	started atomic.Bool
}

type flowStage struct {
	name    string
	stage   Stage
	m       StageMetrics
	start   atomic.Int64 // unix nanoseconds; 0 before the stage starts
	end     atomic.Int64 // unix nanoseconds; 0 while it runs
	stopped atomic.Bool  // cancelled because a downstream stage ended early
}

// New returns an empty Flow.
func New(opts Options) *Flow {
	return &Flow{opts: opts, skips: NewSkips(opts.MaxBadSamples)}
}

// Add appends stage s under name and returns f, so that calls chain. The
// name appears in errors and metrics. Add must not be called once Run has
// started; a nil stage makes Run fail.
func (f *Flow) Add(name string, s Stage) *Flow {
	if f.started.Load() {
		panic("pipeline: Flow.Add after Run")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if s == nil && f.err == nil {
		f.err = fmt.Errorf("pipeline: stage %q is nil", name)
	}
	f.stages = append(f.stages, &flowStage{name: name, stage: s})
	return f
}

// Skips returns the counter of the flow's skipped samples.
func (f *Flow) Skips() *Skips { return f.skips }

// Metrics returns a snapshot of every stage's metrics, in the order the
// stages were added, with Name, Workers and Wall filled, and Busy derived as
// Wall − WaitIn − WaitOut for a stage that does not measure it (a stage
// that is not a pool). It is safe to call while the flow runs.
func (f *Flow) Metrics() []Snapshot {
	f.mu.Lock()
	stages := f.stages
	f.mu.Unlock()
	now := time.Now().UnixNano()
	out := make([]Snapshot, len(stages))
	for i, st := range stages {
		s := st.m.Snapshot()
		s.Name = st.name
		if start := st.start.Load(); start != 0 {
			end := st.end.Load()
			if end == 0 {
				end = now
			}
			s.Wall = time.Duration(end - start)
		}
		if !st.m.measured.Load() {
			s = deriveBusy(s)
		}
		out[i] = s
	}
	return out
}

// Run runs the flow: every stage in its own goroutine, under a context
// derived from ctx that also carries the flow's Skips (see ReportSkip).
// It returns after every stage has returned, with nil on a normal or early
// end and otherwise the first fatal error (see Flow for the rules). A Flow
// can run once; a second Run returns an error.
func (f *Flow) Run(ctx context.Context) error {
	if !f.started.CompareAndSwap(false, true) {
		return errors.New("pipeline: Flow.Run called twice")
	}
	f.mu.Lock()
	stages, cerr := f.stages, f.err
	f.mu.Unlock()
	if cerr != nil {
		return cerr
	}
	if len(stages) == 0 {
		return errors.New("pipeline: flow has no stages")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pipeline: flow not started: %w", err)
	}

	parent := ctx
	fctx, cancel := context.WithCancelCause(WithSkips(ctx, f.skips))
	defer cancel(nil)

	buf := f.opts.Buffer
	switch {
	case buf == 0:
		buf = DefaultBuffer
	case buf < 0:
		buf = 0
	}
	n := len(stages)
	chans := make([]chan any, n-1)
	for i := range chans {
		chans[i] = make(chan any, buf)
	}
	ctxs := make([]context.Context, n)
	stops := make([]context.CancelCauseFunc, n)
	for i := range stages {
		ctxs[i], stops[i] = context.WithCancelCause(fctx)
	}
	defer func() {
		for _, stop := range stops {
			stop(nil)
		}
	}()

	var (
		mu       sync.Mutex
		firstErr error
		realErr  bool // firstErr happened before the parent was cancelled
		anyStop  bool
	)
	record := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr != nil {
			return
		}
		firstErr, realErr = err, parent.Err() == nil
		cancel(err)
	}
	stopUpstream := func(i int) {
		for j := range i {
			if stages[j].end.Load() != 0 {
				continue // already returned
			}
			stages[j].stopped.Store(true)
			stops[j](ErrDownstreamDone)
			mu.Lock()
			anyStop = true
			mu.Unlock()
		}
	}

	var wg sync.WaitGroup
	for i, st := range stages {
		var in *Inbox
		if i > 0 {
			in = NewInbox(chans[i-1], &st.m)
		} else {
			in = NewInbox(nil, &st.m)
		}
		var out *Outbox
		if i < n-1 {
			out = NewOutbox(chans[i], &st.m)
		} else {
			out = NewOutbox(nil, &st.m)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			st.start.Store(time.Now().UnixNano())
			err := protect(func() error { return st.stage.Run(ctxs[i], in, out) })
			st.end.Store(time.Now().UnixNano())
			switch {
			case err == nil:
				stopUpstream(i)
			case st.stopped.Load() && (errors.Is(err, context.Canceled) || errors.Is(err, ErrDownstreamDone)):
				// Cancelled because a downstream stage ended early.
			default:
				record(fmt.Errorf("stage %q: %w", st.name, err))
			}
			// Cancel (above) before closing, so that downstream stages
			// see a failure rather than a normal end.
			if i < n-1 {
				close(chans[i])
			}
		}()
	}
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	if firstErr != nil && realErr {
		return firstErr
	}
	if perr := parent.Err(); perr != nil && (firstErr != nil || anyStop) {
		if firstErr != nil && errors.Is(firstErr, perr) {
			return firstErr
		}
		if cause := context.Cause(parent); cause != nil && cause != perr {
			return fmt.Errorf("pipeline: flow cancelled: %w (%w)", perr, cause)
		}
		return fmt.Errorf("pipeline: flow cancelled: %w", perr)
	}
	return firstErr
}

// protect calls fn, turning a panic into a *PanicError. Every goroutine
// that the runner, a pool or Tee starts runs its work through it.
func protect(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = newPanicError(r)
		}
	}()
	return fn()
}

// PanicError is a panic recovered in a stage or in a worker of a pool,
// with the stack of the goroutine that panicked.
type PanicError struct {
	// Value is the value passed to panic.
	Value any
	// Stack is the stack of the goroutine that panicked, as debug.Stack
	// formats it.
	Stack []byte
}

func newPanicError(v any) *PanicError { return &PanicError{Value: v, Stack: debug.Stack()} }

// Error returns the panic value and the stack.
func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v\n\n%s", e.Value, e.Stack) }

// Unwrap returns the panic value when it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

type skipsKey struct{}

// WithSkips returns a copy of ctx that carries s, for ReportSkip. Flow.Run
// does this for its stages; use it to drive a stage by hand.
func WithSkips(ctx context.Context, s *Skips) context.Context {
	return context.WithValue(ctx, skipsKey{}, s)
}

// SkipsFrom returns the Skips that ctx carries, or nil.
func SkipsFrom(ctx context.Context) *Skips {
	s, _ := ctx.Value(skipsKey{}).(*Skips)
	return s
}

// ReportSkip counts err in the flow's Skips when err is (or wraps) a
// *SkipError, and returns nil while the count is within the flow's limit
// and a fatal error once it is passed. Any other error, and any error when
// ctx carries no Skips, is returned unchanged (a stage driven by hand
// without WithSkips treats a bad sample as fatal).
func ReportSkip(ctx context.Context, err error) error {
	var se *SkipError
	if err == nil || !errors.As(err, &se) {
		return err
	}
	s := SkipsFrom(ctx)
	if s == nil {
		return err
	}
	return s.Add(se)
}
