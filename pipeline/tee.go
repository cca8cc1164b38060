package pipeline

import (
	"context"
	"fmt"
	"sync"
)

// Tee is a sink stage that hands every element it receives to each of
// sinks, in the order received. Each sink runs in its own goroutine behind
// a buffer of one element, so the slowest sink paces the others (as
// go-streams' FanOut does). The first error of a sink cancels the others
// and is returned; a sink that ends early without error simply receives no
// more. Elements are shared, not copied: sinks must not modify them.
//
//	in  ──1──2──3──►  ┬─► sink 0: 1 2 3
//	                  └─► sink 1: 1 2 3
func Tee(sinks ...Stage) Stage {
	return StageFunc(func(ctx context.Context, in *Inbox, out *Outbox) error {
		ctx, cancel := context.WithCancelCause(ctx)
		defer cancel(nil)
		type branch struct {
			ch   chan any
			done chan struct{}
		}
		var wg sync.WaitGroup
		branches := make([]branch, len(sinks))
		for i, s := range sinks {
			b := branch{ch: make(chan any, 1), done: make(chan struct{})}
			branches[i] = b
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer close(b.done)
				if err := runStage(ctx, s, NewInbox(b.ch, nil), NewOutbox(nil, nil)); err != nil {
					cancel(fmt.Errorf("tee branch %d: %w", i, err))
				}
			}()
		}
		var err error
	loop:
		for {
			v, ok, rerr := in.Recv(ctx)
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
		return err
	})
}
