package pipeline_test

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/contrastream/contrastream/pipeline"
)

func TestTee(t *testing.T) {
	collect := func(dst *[]int, mu *sync.Mutex, stopAfter int) pipeline.Stage {
		return pipeline.StageFunc(func(ctx context.Context, in *pipeline.Inbox, _ *pipeline.Outbox) error {
			for {
				v, ok, err := in.Recv(ctx)
				if !ok || err != nil {
					return err
				}
				mu.Lock()
				*dst = append(*dst, v.(int))
				n := len(*dst)
				mu.Unlock()
				if n == stopAfter {
					return nil
				}
			}
		})
	}
	source := pipeline.StageFunc(func(ctx context.Context, _ *pipeline.Inbox, out *pipeline.Outbox) error {
		for i := range 100 {
			if err := out.Send(ctx, i); err != nil {
				return err
			}
		}
		return nil
	})
	for _, tc := range []struct {
		name    string
		stopB   int
		failB   bool
		wantErr bool
	}{
		{name: "both see everything", stopB: -1},
		{name: "a branch ending early does not stop the other", stopB: 10},
		{name: "a failing branch stops the flow", failB: true, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			var mu sync.Mutex
			var a, b []int
			sb := collect(&b, &mu, tc.stopB)
			if tc.failB {
				sb = pipeline.StageFunc(func(ctx context.Context, in *pipeline.Inbox, _ *pipeline.Outbox) error {
					in.Recv(ctx)
					return errors.New("disk full")
				})
			}
			err := pipeline.New(pipeline.Options{}).Add("src", source).Add("tee", pipeline.Tee(collect(&a, &mu, -1), sb)).Run(context.Background())
			if (err != nil) != tc.wantErr {
				t.Fatalf("Run = %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr {
				if !strings.Contains(err.Error(), "tee branch 1: disk full") {
					t.Errorf("error %q does not name the branch and cause", err)
				}
			} else {
				want := make([]int, 100)
				for i := range want {
					want[i] = i
				}
				if !slices.Equal(a, want) {
					t.Errorf("branch 0 got %d elements, want 0..99 in order", len(a))
				}
				if tc.stopB > 0 && len(b) != tc.stopB || tc.stopB < 0 && !slices.Equal(b, want) {
					t.Errorf("branch 1 got %v", b)
				}
			}
			checkGoroutines(t, before)
		})
	}
}

// TestTeeAllBranchesEnd checks that a Tee ends once every one of its sinks
// has ended, so that an endless source is stopped rather than drained
// forever: while the Tee hands elements on, and while it waits for input.
func TestTeeAllBranchesEnd(t *testing.T) {
	upTo := func(n int) pipeline.Stage { return &collector{limit: n} }
	// stalling sends n elements, then waits for its context.
	stalling := func(n int) pipeline.Stage {
		return pipeline.StageFunc(func(ctx context.Context, _ *pipeline.Inbox, out *pipeline.Outbox) error {
			for i := range n {
				if err := out.Send(ctx, i); err != nil {
					return err
				}
			}
			<-ctx.Done()
			return ctx.Err()
		})
	}
	for _, tc := range []struct {
		name  string
		src   pipeline.Stage
		sinks []pipeline.Stage
	}{
		{"endless source", ints(-1, nil), []pipeline.Stage{upTo(3), upTo(5)}},
		{"source stalls after the sinks end", stalling(4), []pipeline.Stage{upTo(2), upTo(4)}},
		{"no sinks", ints(-1, nil), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			f := pipeline.New(pipeline.Options{}).Add("src", tc.src).Add("tee", pipeline.Tee(tc.sinks...))
			done := make(chan error, 1)
			go func() { done <- f.Run(context.Background()) }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Run = %v, want nil", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Run did not return after every sink of the tee ended")
			}
			for i, s := range tc.sinks {
				if got, want := len(s.(*collector).got), s.(*collector).limit; got != want {
					t.Errorf("sink %d got %d elements, want %d", i, got, want)
				}
			}
			checkGoroutines(t, before)
		})
	}
}
