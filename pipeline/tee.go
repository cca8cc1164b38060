package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// errBranchesEnded ends a Tee's wait for input once every branch has ended.
var errBranchesEnded = errors.New("pipeline: every branch of the tee ended")

// Tee is a sink stage that hands every element it receives to each of
// sinks, in the order received. Each sink runs in its own goroutine behind
// a buffer of one element, so the slowest sink paces the others (as
// go-streams' FanOut does). The first error of a sink cancels the others
// and is returned. A sink that ends early without error simply receives no
// more; once every sink has ended, Tee returns nil, so that the flow stops
// the stages before it (see ErrDownstreamDone) rather than draining a
// source that may never end. A Tee of no sinks thus ends at once. Elements
// are shared, not copied: sinks must not modify them.
//
//	in  ──1──2──3──►  ┬─► sink 0: 1 2 3
//	                  └─► sink 1: 1 2 3
//
// Tee costs one goroutine per sink, plus one that watches for the last sink
// to end; all have exited when it returns.
func Tee(sinks ...Stage) Stage {
	return StageFunc(func(ctx context.Context, in *Inbox, out *Outbox) error {
		if len(sinks) == 0 {
			return nil
		}
		ctx, cancel := context.WithCancelCause(ctx)
		defer cancel(nil)
		// recvCtx is also cancelled, with errBranchesEnded, when the last
		// branch ends, so that a wait for input does not outlive them.
		recvCtx, stopRecv := context.WithCancelCause(ctx)
		defer stopRecv(nil)
		type branch struct {
			ch   chan any
			done chan struct{}
		}
		var (
			wg   sync.WaitGroup
			live atomic.Int64 // branches that have not ended
		)
		live.Store(int64(len(sinks)))
		branches := make([]branch, len(sinks))
		for i, s := range sinks {
			b := branch{ch: make(chan any, 1), done: make(chan struct{})}
			branches[i] = b
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer close(b.done)
				err := protect(func() error { return s.Run(ctx, NewInbox(b.ch, nil), NewOutbox(nil, nil)) })
				if err != nil {
					cancel(fmt.Errorf("tee branch %d: %w", i, err))
				}
				if live.Add(-1) == 0 {
					stopRecv(errBranchesEnded)
				}
			}()
		}
		var err error
	loop:
		for live.Load() > 0 {
			v, ok, rerr := in.Recv(recvCtx)
			if rerr != nil || !ok {
				err = rerr
				break
			}
			for _, b := range branches {
				select {
				case b.ch <- v:
				case <-b.done: // ended early: it gets no more
				case <-ctx.Done():
					err = ctx.Err()
					break loop
				}
			}
		}
		for _, b := range branches {
			close(b.ch)
		}
		wg.Wait()
		if cause := context.Cause(ctx); cause != nil && cause != context.Canceled {
			return cause
		}
		if context.Cause(recvCtx) == errBranchesEnded {
			return nil
		}
		return err
	})
}
