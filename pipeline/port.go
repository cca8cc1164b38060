package pipeline

import (
	"context"
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
// err is ctx.Err() when ctx is done first, or when the input was closed
// while ctx is done (an upstream stage failed: that is not a normal end).
// The time spent waiting counts as the stage's WaitIn.
func (in *Inbox) Recv(ctx context.Context) (v any, ok bool, err error) {
	return in.recv(ctx, true)
}

// recv is Recv; timed false leaves the wait out of WaitIn, for a pool that
// charges its workers' waits itself.
func (in *Inbox) recv(ctx context.Context, timed bool) (v any, ok bool, err error) {
	if in == nil || in.ch == nil {
		return nil, false, nil
	}
	start := time.Now()
	select {
	case v, ok = <-in.ch:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if timed {
		in.m.waitIn.Add(int64(time.Since(start)))
	}
	if ok {
		in.m.in.Add(1)
	} else if err == nil {
		// The runner cancels the flow before it closes the channels of
		// a failed stage: a closed input under a done context is not a
		// normal end.
		err = ctx.Err()
	}
	return v, ok, err
}

// tryRecv returns the next element if one is waiting, without blocking and
// without charging any wait. ok is false when none is waiting or the input
// is exhausted (a later recv tells which).
func (in *Inbox) tryRecv() (v any, ok bool) {
	if in == nil || in.ch == nil {
		return nil, false
	}
	select {
	case v, ok = <-in.ch:
	default:
		return nil, false
	}
	if ok {
		in.m.in.Add(1)
	}
	return v, ok
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
	return out.send(ctx, v, true)
}

// send is Send; timed false leaves the wait out of WaitOut, for a pool that
// charges its workers' waits itself.
func (out *Outbox) send(ctx context.Context, v any, timed bool) error {
	if out == nil || out.ch == nil {
		if err := ctx.Err(); err != nil {
			return err
		}
		out.count()
		return nil
	}
	start := time.Now()
	var err error
	select {
	case out.ch <- v:
		out.count()
	case <-ctx.Done():
		err = ctx.Err()
	}
	if timed {
		out.m.waitOut.Add(int64(time.Since(start)))
	}
	return err
}

func (out *Outbox) count() {
	if out != nil && out.m != nil {
		out.m.out.Add(1)
	}
}
