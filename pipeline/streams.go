package pipeline

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/reugn/go-streams"
)

// This file bridges stages and github.com/reugn/go-streams (v0.13.0).
//
// go-streams operators take no context and send unconditionally, so a
// flow of them blocks forever when its consumer stops, and their
// constructors start goroutines at once. FromStreams wraps one operator so
// that it runs as a stage under the flow's context; AsStreamsFlow,
// AsStreamsSource and AsStreamsSink go the other way, for code that
// composes go-streams operators.

// FromStreams returns a stage that runs the go-streams operator f (flow.NewMap,
// flow.NewFilter, …): it feeds f.In() from its Inbox, closing f.In() when the
// input ends, and sends what f.Out() yields to its Outbox, all with
// ctx-aware sends.
//
//	in  -- 1 -- 2 ---- 3 -- 4 ------ 5 --
//	[ --------- go-streams f --------- ]
//	out -- f(1) ... as f emits them ------
//
// When ctx is done the stage stops feeding, closes f.In() and drains
// f.Out() until f closes it, so that f's goroutines exit before Run
// returns; an operator whose function never returns keeps Run from
// returning.
//
// The stage takes ownership of f and can run once. Mind what go-streams
// does not: an element of the wrong type for f (element.(T) inside the
// operator) or a panic in its function crashes the process, because they
// happen on f's own goroutines; a Map with parallelism > 1 loses order.
// Prefer Map of this package for work that can fail.
func FromStreams(f streams.Flow) Stage {
	return &streamsStage{f: f}
}

type streamsStage struct {
	f    streams.Flow
	used atomic.Bool
}

func (s *streamsStage) Run(ctx context.Context, in *Inbox, out *Outbox) error {
	if !s.used.CompareAndSwap(false, true) {
		return errors.New("pipeline: a go-streams operator can run only once")
	}
	fin, fout := s.f.In(), s.f.Out()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // feeder
		defer wg.Done()
		defer close(fin)
		for {
			v, ok, err := in.Recv(ctx)
			if err != nil || !ok {
				return
			}
			select {
			case fin <- v:
			case <-ctx.Done():
				return
			}
		}
	}()

	var err error
loop:
	for {
		select {
		case v, ok := <-fout:
			if !ok {
				break loop
			}
			if err = out.Send(ctx, v); err != nil {
				break loop
			}
		case <-ctx.Done():
			err = ctx.Err()
			break loop
		}
	}
	if err != nil {
		// The feeder stops on ctx and closes fin; f then finishes what
		// it holds and closes fout.
		for range fout {
		}
	}
	wg.Wait()
	if err == nil {
		// fout closed: the input ended, or the feeder stopped on ctx.
		err = ctx.Err()
	}
	return err
}

// stageRun runs a Stage on its own goroutine for the go-streams adapters.
type stageRun struct {
	m    StageMetrics
	done chan struct{}
	err  error
}

func startStage(ctx context.Context, s Stage, in, out chan any) *stageRun {
	r := &stageRun{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		inbox, outbox := NewInbox(in, &r.m), NewOutbox(out, &r.m)
		r.err = protect(func() error { return s.Run(ctx, inbox, outbox) })
		if out != nil {
			close(out)
		}
		if in != nil {
			// Let the upstream go-streams operators, which cannot be
			// cancelled, run to their end instead of blocking forever.
			go func() {
				for range in {
				}
			}()
		}
	}()
	return r
}

// Wait blocks until the stage has returned and returns its error.
func (r *stageRun) Wait() error {
	<-r.done
	return r.err
}

// Metrics returns the stage's metrics (Name and Wall empty).
func (r *stageRun) Metrics() Snapshot { return r.m.Snapshot() }

// StreamsFlow runs a Stage as a go-streams Flow. Make one with
// AsStreamsFlow.
//
// The stage starts at once on its own goroutine under the context given to
// AsStreamsFlow, reads what upstream sends to In() until upstream closes it,
// and its output appears on Out(), which is closed when the stage returns.
// Wait returns the stage's error, which go-streams has no way to carry.
// After the stage returns, In() is drained until upstream closes it, so that
// upstream operators (which cannot be cancelled) are not blocked forever;
// that goroutine lives as long as upstream does.
type StreamsFlow struct {
	*stageRun
	in, out chan any
}

var _ streams.Flow = (*StreamsFlow)(nil)

// AsStreamsFlow starts s as a go-streams Flow under ctx.
func AsStreamsFlow(ctx context.Context, s Stage) *StreamsFlow {
	f := &StreamsFlow{in: make(chan any), out: make(chan any)}
	f.stageRun = startStage(ctx, s, f.in, f.out)
	return f
}

// In returns the channel the stage reads from; upstream closes it.
func (f *StreamsFlow) In() chan<- any { return f.in }

// Out returns the channel the stage writes to; closed when the stage returns.
func (f *StreamsFlow) Out() <-chan any { return f.out }

// Via streams the stage's output to next and returns next.
func (f *StreamsFlow) Via(next streams.Flow) streams.Flow {
	go transmit(f.out, next)
	return next
}

// To streams the stage's output to sink and blocks until the sink has
// completed.
func (f *StreamsFlow) To(sink streams.Sink) {
	transmit(f.out, sink)
	sink.AwaitCompletion()
}

// StreamsSource runs a Stage as a go-streams Source: the stage gets an
// exhausted Inbox, and what it sends appears on Out(). Make one with
// AsStreamsSource.
type StreamsSource struct {
	*stageRun
	out chan any
}

var _ streams.Source = (*StreamsSource)(nil)

// AsStreamsSource starts s as a go-streams Source under ctx.
func AsStreamsSource(ctx context.Context, s Stage) *StreamsSource {
	src := &StreamsSource{out: make(chan any)}
	src.stageRun = startStage(ctx, s, nil, src.out)
	return src
}

// Out returns the channel the stage writes to; closed when the stage returns.
func (s *StreamsSource) Out() <-chan any { return s.out }

// Via streams the stage's output to next and returns next.
func (s *StreamsSource) Via(next streams.Flow) streams.Flow {
	go transmit(s.out, next)
	return next
}

// StreamsSink runs a Stage as a go-streams Sink: the stage reads what
// upstream sends to In() until upstream closes it, and its Outbox discards.
// AwaitCompletion blocks until the stage has returned; Wait also returns its
// error. Make one with AsStreamsSink.
type StreamsSink struct {
	*stageRun
	in chan any
}

var _ streams.Sink = (*StreamsSink)(nil)

// AsStreamsSink starts s as a go-streams Sink under ctx.
func AsStreamsSink(ctx context.Context, s Stage) *StreamsSink {
	k := &StreamsSink{in: make(chan any)}
	k.stageRun = startStage(ctx, s, k.in, nil)
	return k
}

// In returns the channel the stage reads from; upstream closes it.
func (k *StreamsSink) In() chan<- any { return k.in }

// AwaitCompletion blocks until the stage has returned.
func (k *StreamsSink) AwaitCompletion() { <-k.done }

func transmit(from <-chan any, to streams.Inlet) {
	for v := range from {
		to.In() <- v
	}
	close(to.In())
}
