package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
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

// Parallel runs every task at once: each can wait for all the others.
func TestParallelAtOnce(t *testing.T) {
	const n = 6
	var arrived atomic.Int64
	release := make(chan struct{})
	err := pipeline.Parallel(n, func(i int) error {
		if arrived.Add(1) == n {
			close(release)
		}
		<-release
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// ForEach calls every task once, on a goroutine index below the number of
// goroutines, never two tasks on one index at once, whatever the number of
// workers and whatever fails.
func TestForEach(t *testing.T) {
	for _, tc := range []struct{ n, workers int }{
		{1, 1}, {1, 4}, {7, 1}, {7, 3}, {7, 7}, {7, 20}, {100, 2}, {100, 0}, {1000, 8},
	} {
		t.Run(fmt.Sprintf("n=%d/workers=%d", tc.n, tc.workers), func(t *testing.T) {
			before := runtime.NumGoroutine()
			g := tc.workers
			if g <= 0 {
				g = runtime.GOMAXPROCS(0)
			}
			g = min(g, tc.n)
			calls := make([]atomic.Int64, tc.n)
			busy := make([]atomic.Bool, g)
			err := pipeline.ForEach(tc.n, tc.workers, func(w, i int) error {
				if w < 0 || w >= g {
					return fmt.Errorf("task %d on goroutine %d of %d", i, w, g)
				}
				if !busy[w].CompareAndSwap(false, true) {
					return fmt.Errorf("task %d: goroutine %d runs two tasks at once", i, w)
				}
				defer busy[w].Store(false)
				calls[i].Add(1)
				if g == tc.n && w != i {
					return fmt.Errorf("workers ≥ n: task %d on goroutine %d, want its own", i, w)
				}
				if i%5 == 3 {
					return fmt.Errorf("task %d: %w", i, errBoom)
				}
				if i%5 == 4 {
					panic(fmt.Sprintf("task %d", i))
				}
				return nil
			})
			for i := range calls {
				if c := calls[i].Load(); c != 1 {
					t.Errorf("task %d called %d times, want 1", i, c)
				}
			}
			switch {
			case tc.n <= 3:
				if err != nil {
					t.Errorf("err %v, want nil", err)
				}
			case err == nil || err.Error() != "task 3: boom":
				t.Errorf("err %v, want task 3's, the lowest", err)
			}
			checkGoroutines(t, before)
		})
	}
}

// The error returned is the lowest task's, whichever failed first in time.
func TestForEachLowestError(t *testing.T) {
	for _, workers := range []int{1, 2, 4, 16} {
		release := make(chan struct{})
		err := pipeline.ForEach(16, workers, func(_, i int) error {
			switch i {
			case 5:
				if workers > 1 {
					<-release // fails after 12, on another goroutine
				}
				return errors.New("five")
			case 9, 12:
				if i == 12 {
					close(release)
				}
				return fmt.Errorf("task %d", i)
			}
			return nil
		})
		if err == nil || err.Error() != "five" {
			t.Errorf("%d workers: err %v, want task 5's", workers, err)
		}
	}
}

// A panic in any task, on the calling goroutine or another, comes back as a
// *PanicError that carries the value and the stack of the panicking
// function, and leaves no goroutine behind.
func TestForEachPanic(t *testing.T) {
	for _, tc := range []struct {
		name       string
		n, workers int
		bad        int
	}{
		{"caller's task", 4, 4, 0},
		{"own goroutine", 4, 4, 2},
		{"taken later", 50, 3, 41},
		{"one worker", 5, 1, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			err := pipeline.ForEach(tc.n, tc.workers, func(_, i int) error {
				if i == tc.bad {
					panicInTask(i)
				}
				return nil
			})
			var pe *pipeline.PanicError
			if !errors.As(err, &pe) {
				t.Fatalf("err %v, want a *PanicError", err)
			}
			if pe.Value != fmt.Sprintf("bad task %d", tc.bad) {
				t.Errorf("value %v", pe.Value)
			}
			if s := string(pe.Stack); !strings.Contains(s, "panicInTask") || !strings.Contains(s, "goroutine ") {
				t.Errorf("stack lacks the panicking function:\n%s", s)
			}
			if !strings.Contains(err.Error(), "bad task") || !strings.Contains(err.Error(), "panicInTask") {
				t.Errorf("Error() lacks the value or the stack: %s", err)
			}
			checkGoroutines(t, before)
		})
	}
}

//go:noinline
func panicInTask(i int) { panic(fmt.Sprintf("bad task %d", i)) }

// A failure cancels the context the others see, with the failure as the
// cause, and the error returned is the lowest task's (here the one that
// returned the cause).
func TestForEachContext(t *testing.T) {
	before := runtime.NumGoroutine()
	err := pipeline.ForEachContext(context.Background(), 3, 3, func(ctx context.Context, _, i int) error {
		switch i {
		case 0, 1: // a producer and a worker waiting for the others
			<-ctx.Done()
			return context.Cause(ctx)
		default:
			panic(errBoom)
		}
	})
	var pe *pipeline.PanicError
	if !errors.As(err, &pe) || !errors.Is(err, errBoom) {
		t.Fatalf("err %v, want the *PanicError of task 2", err)
	}
	checkGoroutines(t, before)

	// A task that stops with ctx.Err() (as sources.Each does) below the
	// one that failed reports the failure, not "context canceled".
	err = pipeline.ForEachContext(context.Background(), 2, 2, func(ctx context.Context, _, i int) error {
		if i == 0 {
			<-ctx.Done()
			return fmt.Errorf("reading: %w", ctx.Err())
		}
		return errBoom
	})
	if err != errBoom {
		t.Fatalf("err %v, want boom, the cause", err)
	}

	// The parent's cancellation reaches the tasks.
	parent, cancel := context.WithCancel(context.Background())
	cancel()
	err = pipeline.ForEachContext(parent, 4, 2, func(ctx context.Context, _, _ int) error { return ctx.Err() })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if err := pipeline.ForEachContext(context.Background(), 4, 2, func(context.Context, int, int) error { return nil }); err != nil {
		t.Fatal(err)
	}
}

// A Team runs again and again, with any n and workers, and a failure in
// one Run does not leak into the next.
func TestTeamReuse(t *testing.T) {
	var tm pipeline.Team
	before := runtime.NumGoroutine()
	for round := range 20 {
		n, workers := 1+round*7%23, 1+round%5
		var sum atomic.Int64
		err := tm.Run(n, workers, func(_, i int) error {
			sum.Add(int64(i))
			if round%4 == 1 && i == n-1 {
				panic("last")
			}
			return nil
		})
		if want := int64(n * (n - 1) / 2); sum.Load() != want {
			t.Fatalf("round %d: sum %d, want %d", round, sum.Load(), want)
		}
		var pe *pipeline.PanicError
		if (round%4 == 1) != errors.As(err, &pe) {
			t.Fatalf("round %d: err %v", round, err)
		}
	}
	checkGoroutines(t, before)
}

// Run on a Team that is running panics: here a task calls it, and the
// panic comes back as the task's error.
func TestTeamRunWhileRunning(t *testing.T) {
	var tm pipeline.Team
	err := tm.Run(2, 2, func(_, i int) error {
		if i == 1 {
			return tm.Run(1, 1, func(int, int) error { return nil })
		}
		return nil
	})
	var pe *pipeline.PanicError
	if !errors.As(err, &pe) || !strings.Contains(fmt.Sprint(pe.Value), "while the Team runs") {
		t.Fatalf("err %v, want the misuse reported", err)
	}
	if err := tm.Run(3, 2, func(int, int) error { return nil }); err != nil {
		t.Fatalf("the Team after: %v", err)
	}
}

// A sum over fixed blocks combined in block order is the same bytes for
// any number of workers: the contract of the callers.
func TestForEachWorkerCountIndependent(t *testing.T) {
	x := make([]float64, 10007)
	for i := range x {
		x[i] = math.Sin(float64(i)) * math.Pow(10, float64(i%17-8))
	}
	sum := func(workers int) float64 {
		const block = 256
		parts := make([]float64, (len(x)+block-1)/block)
		if err := pipeline.ForEach(len(parts), workers, func(_, b int) error {
			for _, v := range x[b*block : min(len(x), (b+1)*block)] {
				parts[b] += v
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		var s float64
		for _, p := range parts {
			s += p
		}
		return s
	}
	want := sum(1)
	for _, workers := range []int{2, 3, 8, 64, 0} {
		if got := sum(workers); math.Float64bits(got) != math.Float64bits(want) {
			t.Errorf("%d workers: %v, 1 worker: %v", workers, got, want)
		}
	}
}

// BenchmarkTeamRun measures the fan-out's own cost: a Run of empty tasks.
func BenchmarkTeamRun(b *testing.B) {
	for _, tc := range []struct{ n, workers int }{{2, 2}, {8, 2}, {256, 2}} {
		b.Run(fmt.Sprintf("n=%d/workers=%d", tc.n, tc.workers), func(b *testing.B) {
			var tm pipeline.Team
			f := func(int, int) error { return nil }
			b.ReportAllocs()
			for b.Loop() {
				if err := tm.Run(tc.n, tc.workers, f); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func ExampleForEach() {
	// Squares of 0..9 on 3 goroutines: task i writes only out[i].
	out := make([]int, 10)
	err := pipeline.ForEach(len(out), 3, func(_, i int) error {
		out[i] = i * i
		return nil
	})
	fmt.Println(out, err)

	// A panic in a task is an error, with the stack.
	err = pipeline.ForEach(4, 2, func(_, i int) error {
		var m map[int]int
		if i == 3 {
			m[i] = i // a nil map
		}
		return nil
	})
	var pe *pipeline.PanicError
	fmt.Println(errors.As(err, &pe), pe.Value)
	// Output:
	// [0 1 4 9 16 25 36 49 64 81] <nil>
	// true assignment to entry in nil map
}

func ExampleTeam() {
	// A Team made once runs a loop every step. Work is split into fixed
	// blocks of 4 and the partial sums are added in block order, so the
	// result does not depend on the number of workers; w picks scratch.
	x := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	const block = 4
	parts := make([]float64, (len(x)+block-1)/block)
	var team pipeline.Team
	task := func(_, b int) error { // made once: Run allocates nothing
		parts[b] = 0
		for _, v := range x[b*block : min(len(x), (b+1)*block)] {
			parts[b] += v
		}
		return nil
	}
	for step := range 3 {
		for i := range x {
			x[i]++
		}
		if err := team.Run(len(parts), 2, task); err != nil {
			fmt.Println(err)
			return
		}
		var sum float64
		for _, p := range parts {
			sum += p
		}
		fmt.Println(step, sum)
	}
	// Output:
	// 0 65
	// 1 75
	// 2 85
}

func ExampleForEachContext() {
	// A producer (task 0) feeds two consumers; when one fails, the
	// producer's context is cancelled and every task returns.
	jobs := make(chan int)
	err := pipeline.ForEachContext(context.Background(), 3, 3, func(ctx context.Context, _, i int) error {
		if i == 0 {
			defer close(jobs)
			for j := 0; ; j++ {
				select {
				case jobs <- j:
				case <-ctx.Done():
					return context.Cause(ctx)
				}
			}
		}
		for j := range jobs {
			if j == 5 {
				return fmt.Errorf("job %d failed", j)
			}
		}
		return nil
	})
	fmt.Println(err)
	// Output:
	// job 5 failed
}
