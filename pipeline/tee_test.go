package pipeline_test

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

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
