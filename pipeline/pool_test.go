package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/contrastream/contrastream/pipeline"
)

func TestMapOrder(t *testing.T) {
	const n = 300
	tests := []struct {
		name      string
		workers   int
		unordered bool
		chunk     int
	}{
		{"ordered 1 worker", 1, false, 0},
		{"ordered 8 workers", 8, false, 0},
		{"ordered default workers", 0, false, 0},
		{"ordered 3 workers chunks of 7", 3, false, 7},
		{"ordered 1 worker chunks of 16", 1, false, 16},
		{"unordered 1 worker", 1, true, 0},
		{"unordered 8 workers", 8, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			delay := func(v int) time.Duration {
				// a fixed pseudo-random delay per element, up to 100µs
				r := rand.New(rand.NewPCG(uint64(v), 7))
				return time.Duration(r.IntN(100)) * time.Microsecond
			}
			sink := &collector{}
			f := pipeline.New(pipeline.Options{}).
				Add("src", ints(n, nil)).
				Add("square", pipeline.Map(func(_ context.Context, v int) (int, error) {
					time.Sleep(delay(v))
					return v * v, nil
				}, pipeline.PoolOptions{Workers: tt.workers, Unordered: tt.unordered, Chunk: tt.chunk})).
				Add("sink", sink)
			if err := f.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := sink.ints(t)
			if tt.unordered {
				slices.Sort(got)
			}
			if len(got) != n {
				t.Fatalf("got %d elements, want %d", len(got), n)
			}
			for i, v := range got {
				if v != i*i {
					t.Fatalf("element %d = %d, want %d", i, v, i*i)
				}
			}
			want := tt.workers
			if want == 0 {
				want = runtime.GOMAXPROCS(0)
			}
			if w := f.Metrics()[1].Workers; w != want {
				t.Errorf("Workers = %d, want %d", w, want)
			}
			checkGoroutines(t, before)
		})
	}
}

// TestMapBackPressure stalls the sink after its first element and checks
// that the source cannot run ahead of it by more than the channel buffers
// plus the pool's in-flight bound.
func TestMapBackPressure(t *testing.T) {
	tests := []struct {
		name            string
		workers, buffer int
		unordered       bool
		chunk           int
		inFlight        int // the pool's documented bound
	}{
		{"ordered 2 workers", 2, 2, false, 0, 2*2 + 2},
		{"ordered 4 workers buffer 1", 4, 1, false, 0, 2*4 + 2},
		{"ordered 2 workers chunks of 5", 2, 2, false, 5, (2*2 + 2) * 5},
		{"unordered 3 workers", 3, 2, true, 0, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var sent atomic.Int64
			release := make(chan struct{})
			f := pipeline.New(pipeline.Options{Buffer: tt.buffer}).
				Add("src", ints(-1, &sent)).
				Add("pool", pipeline.Map(func(_ context.Context, v int) (int, error) { return v, nil },
					pipeline.PoolOptions{Workers: tt.workers, Unordered: tt.unordered, Chunk: tt.chunk})).
				Add("sink", pipeline.StageFunc(func(ctx context.Context, in *pipeline.Inbox, _ *pipeline.Outbox) error {
					if _, _, err := in.Recv(ctx); err != nil {
						return err
					}
					select { // stall
					case <-release:
						return nil
					case <-ctx.Done():
						return ctx.Err()
					}
				}))
			done := make(chan error, 1)
			go func() { done <- f.Run(ctx) }()

			// Wait until the source stops making progress.
			last, stable := int64(-1), 0
			for stable < 4 {
				time.Sleep(10 * time.Millisecond)
				if n := sent.Load(); n == last {
					stable++
				} else {
					last, stable = n, 0
				}
			}
			// source→pool buffer + in flight + pool→sink buffer + the one
			// the sink holds.
			bound := int64(tt.buffer + tt.inFlight + tt.buffer + 1)
			if last > bound || last < int64(tt.buffer)+1 {
				t.Fatalf("source sent %d elements ahead of a stalled sink, want at most %d", last, bound)
			}
			t.Logf("source sent %d (bound %d)", last, bound)
			close(release)
			if err := <-done; err != nil {
				t.Fatalf("Run: %v", err)
			}
			checkGoroutines(t, before)
		})
	}
}

func TestMapErrors(t *testing.T) {
	tests := []struct {
		name  string
		stage pipeline.Stage
		src   pipeline.Stage
		want  []string
		is    error
	}{
		{
			name:  "wrong element type",
			stage: pipeline.Map(func(_ context.Context, s string) (int, error) { return len(s), nil }, pipeline.PoolOptions{Workers: 2}),
			src:   ints(10, nil),
			want:  []string{`stage "pool"`, "type int", "want string"},
		},
		{
			name:  "wrong element type unordered",
			stage: pipeline.Map(func(_ context.Context, s string) (int, error) { return len(s), nil }, pipeline.PoolOptions{Workers: 2, Unordered: true}),
			src:   ints(10, nil),
			want:  []string{"type int", "want string"},
		},
		{
			name:  "nil element for a value type",
			stage: pipeline.Map(func(_ context.Context, v int) (int, error) { return v, nil }, pipeline.PoolOptions{}),
			src: pipeline.StageFunc(func(ctx context.Context, _ *pipeline.Inbox, out *pipeline.Outbox) error {
				return out.Send(ctx, nil)
			}),
			want: []string{"nil element", "want int"},
		},
		{
			name: "fatal error from fn",
			stage: pipeline.Map(func(_ context.Context, v int) (int, error) {
				if v == 3 {
					return 0, fmt.Errorf("element %d: %w", v, errBoom)
				}
				return v, nil
			}, pipeline.PoolOptions{Workers: 4}),
			src:  ints(-1, nil),
			want: []string{`stage "pool": element 3: boom`},
			is:   errBoom,
		},
		{
			name: "fatal error from fn in a chunk",
			stage: pipeline.Map(func(_ context.Context, v int) (int, error) {
				if v == 5 {
					return 0, fmt.Errorf("element %d: %w", v, errBoom)
				}
				return v, nil
			}, pipeline.PoolOptions{Workers: 2, Chunk: 4}),
			src:  ints(-1, nil),
			want: []string{`stage "pool": element 5: boom`},
			is:   errBoom,
		},
		{
			name: "panic in newWorker",
			stage: pipeline.MapWorkers(func(w int) func(context.Context, int) (int, error) {
				if w == 1 {
					panic(fmt.Sprintf("worker %d cannot start", w))
				}
				return func(_ context.Context, v int) (int, error) { return v, nil }
			}, pipeline.PoolOptions{Workers: 2}),
			src:  ints(-1, nil),
			want: []string{"panic: worker 1 cannot start", "_test.go:"},
		},
		{
			name: "panic in fn unordered",
			stage: pipeline.Map(func(_ context.Context, v int) (int, error) {
				if v == 2 {
					panic(errBoom)
				}
				return v, nil
			}, pipeline.PoolOptions{Workers: 2, Unordered: true}),
			src:  ints(-1, nil),
			want: []string{"panic: boom", "goroutine "},
			is:   errBoom,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			f := pipeline.New(pipeline.Options{}).Add("src", tt.src).Add("pool", tt.stage).Add("sink", &collector{})
			err := f.Run(context.Background())
			if err == nil {
				t.Fatal("Run = nil")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Run = %.300q, want it to contain %q", err, w)
				}
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
			checkGoroutines(t, before)
		})
	}
}

func TestMapNilInterfaceElement(t *testing.T) {
	sink := &collector{}
	f := pipeline.New(pipeline.Options{}).
		Add("src", pipeline.StageFunc(func(ctx context.Context, _ *pipeline.Inbox, out *pipeline.Outbox) error {
			return out.Send(ctx, nil)
		})).
		Add("pool", pipeline.Map(func(_ context.Context, v error) (bool, error) { return v == nil, nil }, pipeline.PoolOptions{})).
		Add("sink", sink)
	if err := f.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(sink.got) != 1 || sink.got[0] != true {
		t.Fatalf("got %v", sink.got)
	}
}

// TestMapWorkersState checks that each worker's function is called only
// from its own goroutine: a per-worker counter without locks stays exact
// under -race.
func TestMapWorkersState(t *testing.T) {
	const workers, n = 4, 200
	var started atomic.Int64
	counts := make([]int, workers)
	stage := pipeline.MapWorkers(func(w int) func(context.Context, int) (int, error) {
		started.Add(1)
		scratch := make([]int, 0, 8)
		return func(_ context.Context, v int) (int, error) {
			scratch = append(scratch[:0], v) // per-worker buffer, no lock
			counts[w]++
			return scratch[0] + 1, nil
		}
	}, pipeline.PoolOptions{Workers: workers})
	sink := &collector{}
	if err := pipeline.New(pipeline.Options{}).Add("src", ints(n, nil)).Add("pool", stage).Add("sink", sink).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, c := range counts {
		total += c
	}
	if total != n || started.Load() != workers {
		t.Fatalf("calls %d (want %d), workers started %d", total, n, started.Load())
	}
	for i, v := range sink.ints(t) {
		if v != i+1 {
			t.Fatalf("element %d = %d", i, v)
		}
	}
}

// TestMapByHand drives a pool without a Flow, as the stages' own tests do.
func TestMapByHand(t *testing.T) {
	in := make(chan any, 3)
	out := make(chan any, 3)
	for i := range 3 {
		in <- i
	}
	close(in)
	m := &pipeline.StageMetrics{}
	stage := pipeline.Map(func(_ context.Context, v int) (string, error) { return fmt.Sprint(v), nil }, pipeline.PoolOptions{Workers: 2})
	if err := stage.Run(context.Background(), pipeline.NewInbox(in, m), pipeline.NewOutbox(out, m)); err != nil {
		t.Fatal(err)
	}
	close(out)
	var got []string
	for v := range out {
		got = append(got, v.(string))
	}
	if !slices.Equal(got, []string{"0", "1", "2"}) {
		t.Fatalf("got %v", got)
	}
	if s := m.Snapshot(); s.In != 3 || s.Out != 3 || s.Workers != 2 {
		t.Fatalf("snapshot %+v", s)
	}
}

// BenchmarkMap measures an ordered pool with a trivial function, so it
// shows the pool's own cost per element.
func BenchmarkMap(b *testing.B) {
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			m := pipeline.Map(func(_ context.Context, v int) (int, error) { return v + 1, nil }, pipeline.PoolOptions{Workers: workers})
			f := pipeline.New(pipeline.Options{}).Add("src", ints(b.N, nil)).Add("map", m).Add("sink", &discard{})
			b.ResetTimer()
			if err := f.Run(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "elements/s")
		})
	}
}

// TestMapNilBoxes runs a pool with nil boxes: an exhausted input and a
// discarding output.
func TestMapNilBoxes(t *testing.T) {
	for _, unordered := range []bool{false, true} {
		stage := pipeline.Map(func(_ context.Context, v int) (int, error) { return v, nil }, pipeline.PoolOptions{Workers: 2, Unordered: unordered})
		if err := stage.Run(context.Background(), nil, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMapChunkSkips drops every third element inside chunks and checks the
// others keep their order and the skips are counted.
func TestMapChunkSkips(t *testing.T) {
	const n = 100
	sink := &collector{}
	f := pipeline.New(pipeline.Options{MaxBadSamples: n}).
		Add("src", ints(n, nil)).
		Add("pool", pipeline.Map(func(_ context.Context, v int) (int, error) {
			if v%3 == 0 {
				return 0, pipeline.Skip(fmt.Sprint("element ", v), errBoom)
			}
			return v, nil
		}, pipeline.PoolOptions{Workers: 2, Chunk: 8})).
		Add("sink", sink)
	if err := f.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	var want []int
	for v := range n {
		if v%3 != 0 {
			want = append(want, v)
		}
	}
	if got := sink.ints(t); !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if c := f.Skips().Count(); c != (n+2)/3 {
		t.Errorf("skips counted %d, want %d", c, (n+2)/3)
	}
}
