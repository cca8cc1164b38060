package pipeline_test

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/contrastream/contrastream/pipeline"
)

func TestParallel(t *testing.T) {
	var calls atomic.Int64
	if err := pipeline.Parallel(5, func(int) error { calls.Add(1); return nil }); err != nil || calls.Load() != 5 {
		t.Fatalf("err %v after %d calls, want nil after 5", err, calls.Load())
	}
	if err := pipeline.Parallel(0, func(int) error { return errBoom }); err != nil {
		t.Fatalf("n = 0: %v", err)
	}
	err := pipeline.Parallel(4, func(i int) error {
		if i >= 2 {
			return fmt.Errorf("worker %d: %w", i, errBoom)
		}
		return nil
	})
	if err == nil || err.Error() != "worker 2: boom" {
		t.Fatalf("err %v, want worker 2's", err)
	}
	err = pipeline.Parallel(3, func(i int) error {
		if i == 1 {
			panic(errBoom)
		}
		return nil
	})
	var pe *pipeline.PanicError
	if !errors.As(err, &pe) || !errors.Is(err, errBoom) {
		t.Fatalf("err %v, want a *PanicError wrapping boom", err)
	}
}
