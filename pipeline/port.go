package pipeline

import (
	"context"
	"sync/atomic"
	"time"
)

// Inbox is the receiving side of a stage. It is safe for concurrent use by
// the workers of one stage.
type Inbox struct {
	ch <-chan any
	m  *StageMetrics
}

// NewInbox wraps ch. m may be nil. The runner makes the inboxes of a flow;
// NewInbox is for tests and for stages driven by hand.
func NewInbox(ch <-chan any, m *StageMetrics) *Inbox {
	if m == nil {
		m = &StageMetrics{}
	}
	return &Inbox{ch: ch, m: m}
}

// Recv returns the next element. ok is false when the input is exhausted;
// err is ctx.Err() when ctx is done first. The time spent waiting counts as
// the stage's WaitIn.
func (in *Inbox) Recv(ctx context.Context) (v any, ok bool, err error) {
	if in == nil || in.ch == nil {
		return nil, false, nil
	}
	start := time.Now()
	select {
	case v, ok = <-in.ch:
	case <-ctx.Done():
		err = ctx.Err()
	}
	in.m.waitIn.Add(int64(time.Since(start)))
	if ok {
		in.m.in.Add(1)
	}
	return v, ok, err
}

// Outbox is the sending side of a stage. It is safe for concurrent use by
// the workers of one stage.
type Outbox struct {
	ch chan<- any
	m  *StageMetrics
}

// NewOutbox wraps ch; a nil ch discards. m may be nil.
func NewOutbox(ch chan<- any, m *StageMetrics) *Outbox {
	if m == nil {
		m = &StageMetrics{}
	}
	return &Outbox{ch: ch, m: m}
}

// Send hands v downstream, blocking while the buffer is full (back-pressure).
// It returns ctx.Err() when ctx is done first. The time spent blocked counts
// as the stage's WaitOut.
func (out *Outbox) Send(ctx context.Context, v any) error {
	if out == nil || out.ch == nil {
		out.count()
		return ctx.Err()
	}
	start := time.Now()
	select {
	case out.ch <- v:
		out.m.waitOut.Add(int64(time.Since(start)))
		out.count()
		return nil
	case <-ctx.Done():
		out.m.waitOut.Add(int64(time.Since(start)))
		return ctx.Err()
	}
}

func (out *Outbox) count() {
	if out != nil && out.m != nil {
		out.m.out.Add(1)
	}
}

// StageMetrics are the live counters of one stage. All fields are updated
// atomically; read them with Snapshot.
type StageMetrics struct {
	in, out         atomic.Int64
	waitIn, waitOut atomic.Int64 // nanoseconds, summed over the stage's workers
	busy            atomic.Int64 // nanoseconds of work, summed over workers; set by pools, else derived
}

// AddBusy records d of work done by one worker of the stage. Worker pools
// call it; a plain stage's busy time is derived from its wall time.
func (m *StageMetrics) AddBusy(d time.Duration) { m.busy.Add(int64(d)) }

// Snapshot is a copy of a stage's metrics at one moment.
type Snapshot struct {
	Name    string
	Workers int
	In, Out int64
	// Busy is the time spent working, summed over workers.
	Busy time.Duration
	// WaitIn is the time spent waiting for input; a stage that waits for
	// input a lot is starved by the stage before it.
	WaitIn time.Duration
	// WaitOut is the time spent blocked on a full output buffer; a stage that
	// waits on output a lot is held back by the stage after it.
	WaitOut time.Duration
	// Wall is the time from the stage's start to its end (or to now).
	Wall time.Duration
}

// Snapshot reads the counters.
func (m *StageMetrics) Snapshot() Snapshot {
	return Snapshot{
		In:      m.in.Load(),
		Out:     m.out.Load(),
		Busy:    time.Duration(m.busy.Load()),
		WaitIn:  time.Duration(m.waitIn.Load()),
		WaitOut: time.Duration(m.waitOut.Load()),
	}
}
