package pipeline_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/contrastream/contrastream/pipeline"
)

// ints emits 0, 1, …, n-1; n < 0 emits forever (until cancelled). sent
// counts the successful sends when not nil.
func ints(n int, sent *atomic.Int64) pipeline.Stage {
	return pipeline.StageFunc(func(ctx context.Context, _ *pipeline.Inbox, out *pipeline.Outbox) error {
		for i := 0; n < 0 || i < n; i++ {
			if err := out.Send(ctx, i); err != nil {
				return err
			}
			if sent != nil {
				sent.Add(1)
			}
		}
		return nil
	})
}

// pass forwards every element.
func pass() pipeline.Stage {
	return pipeline.StageFunc(func(ctx context.Context, in *pipeline.Inbox, out *pipeline.Outbox) error {
		for {
			v, ok, err := in.Recv(ctx)
			if err != nil || !ok {
				return err
			}
			if err := out.Send(ctx, v); err != nil {
				return err
			}
		}
	})
}

// collector is a sink that keeps what it receives; limit > 0 makes it
// return nil after that many elements.
type collector struct {
	mu    sync.Mutex
	got   []any
	limit int
}

func (c *collector) Run(ctx context.Context, in *pipeline.Inbox, _ *pipeline.Outbox) error {
	for {
		v, ok, err := in.Recv(ctx)
		if err != nil || !ok {
			return err
		}
		c.mu.Lock()
		c.got = append(c.got, v)
		n := len(c.got)
		c.mu.Unlock()
		if c.limit > 0 && n >= c.limit {
			return nil
		}
	}
}

func (c *collector) ints(t *testing.T) []int {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]int, len(c.got))
	for i, v := range c.got {
		x, ok := v.(int)
		if !ok {
			t.Fatalf("element %d is %T, want int", i, v)
		}
		out[i] = x
	}
	return out
}

// checkGoroutines fails t unless the goroutine count comes back to at most
// before within a second.
func checkGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= before {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines after Run, %d before:\n%s", n, before, buf)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var errBoom = errors.New("boom")

func TestFlowRun(t *testing.T) {
	type tc struct {
		name string
		// build adds the stages; cancel, when set, is called on the parent
		// context's cancel function once the flow runs.
		build   func(f *pipeline.Flow, sink *collector)
		parent  func() (context.Context, context.CancelFunc)
		cancel  bool
		wantErr func(t *testing.T, err error)
		check   func(t *testing.T, f *pipeline.Flow, sink *collector)
	}
	noErr := func(t *testing.T, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	}
	tests := []tc{
		{
			name: "normal end",
			build: func(f *pipeline.Flow, sink *collector) {
				f.Add("src", ints(100, nil)).Add("mid", pass()).Add("sink", sink)
			},
			wantErr: noErr,
			check: func(t *testing.T, f *pipeline.Flow, sink *collector) {
				got := sink.ints(t)
				if len(got) != 100 {
					t.Fatalf("got %d elements, want 100", len(got))
				}
				for i, v := range got {
					if v != i {
						t.Fatalf("element %d = %d", i, v)
					}
				}
			},
		},
		{
			name: "single stage",
			build: func(f *pipeline.Flow, _ *collector) {
				f.Add("only", ints(10, nil))
			},
			wantErr: noErr,
			check: func(t *testing.T, f *pipeline.Flow, _ *collector) {
				if out := f.Metrics()[0].Out; out != 10 {
					t.Errorf("Out = %d, want 10 (the sink's outbox counts discards)", out)
				}
			},
		},
		{
			name: "error in a middle stage",
			build: func(f *pipeline.Flow, sink *collector) {
				f.Add("src", ints(-1, nil)).
					Add("mid", pipeline.StageFunc(func(ctx context.Context, in *pipeline.Inbox, out *pipeline.Outbox) error {
						for i := 0; ; i++ {
							v, ok, err := in.Recv(ctx)
							if err != nil || !ok {
								return err
							}
							if i == 5 {
								return errBoom
							}
							if err := out.Send(ctx, v); err != nil {
								return err
							}
						}
					})).
					Add("sink", sink)
			},
			wantErr: func(t *testing.T, err error) {
				if !errors.Is(err, errBoom) {
					t.Fatalf("Run = %v, want boom", err)
				}
				if want := `stage "mid": boom`; err.Error() != want {
					t.Fatalf("Run = %q, want %q", err, want)
				}
			},
		},
		{
			name: "error in the source",
			build: func(f *pipeline.Flow, sink *collector) {
				f.Add("src", pipeline.StageFunc(func(ctx context.Context, _ *pipeline.Inbox, out *pipeline.Outbox) error {
					if err := out.Send(ctx, 1); err != nil {
						return err
					}
					return errBoom
				})).Add("mid", pass()).Add("sink", sink)
			},
			wantErr: func(t *testing.T, err error) {
				if !errors.Is(err, errBoom) || !strings.HasPrefix(err.Error(), `stage "src"`) {
					t.Fatalf("Run = %v", err)
				}
			},
		},
		{
			name: "parent cancelled",
			build: func(f *pipeline.Flow, sink *collector) {
				f.Add("src", ints(-1, nil)).Add("mid", pass()).Add("sink", sink)
			},
			cancel: true,
			wantErr: func(t *testing.T, err error) {
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("Run = %v, want context.Canceled", err)
				}
			},
		},
		{
			name: "parent deadline",
			build: func(f *pipeline.Flow, sink *collector) {
				f.Add("src", ints(-1, nil)).Add("mid", pass()).Add("sink", sink)
			},
			parent: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 20*time.Millisecond)
			},
			wantErr: func(t *testing.T, err error) {
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("Run = %v, want context.DeadlineExceeded", err)
				}
			},
		},
		{
			name: "panic in a stage",
			build: func(f *pipeline.Flow, sink *collector) {
				f.Add("src", ints(-1, nil)).
					Add("mid", pipeline.StageFunc(func(ctx context.Context, in *pipeline.Inbox, out *pipeline.Outbox) error {
						if _, _, err := in.Recv(ctx); err != nil {
							return err
						}
						var m map[string]int
						m["x"] = 1 // panics
						return nil
					})).
					Add("sink", sink)
			},
			wantErr: wantPanic("mid", "assignment to entry in nil map"),
		},
		{
			name: "panic in a pool worker",
			build: func(f *pipeline.Flow, sink *collector) {
				f.Add("src", ints(-1, nil)).
					Add("pool", pipeline.Map(func(_ context.Context, v int) (int, error) {
						if v == 7 {
							panic("seven")
						}
						return v, nil
					}, pipeline.PoolOptions{Workers: 3})).
					Add("sink", sink)
			},
			wantErr: wantPanic("pool", "seven"),
		},
		{
			name: "sink ends early",
			build: func(f *pipeline.Flow, sink *collector) {
				sink.limit = 5
				f.Add("src", ints(-1, nil)).
					Add("pool", pipeline.Map(func(_ context.Context, v int) (int, error) { return v, nil },
						pipeline.PoolOptions{Workers: 2})).
					Add("mid", pass()).
					Add("sink", sink)
			},
			wantErr: noErr,
			check: func(t *testing.T, _ *pipeline.Flow, sink *collector) {
				got := sink.ints(t)
				if len(got) != 5 || got[4] != 4 {
					t.Fatalf("got %v", got)
				}
			},
		},
		{
			name: "middle stage ends early",
			build: func(f *pipeline.Flow, sink *collector) {
				f.Add("src", ints(-1, nil)).
					Add("take3", pipeline.StageFunc(func(ctx context.Context, in *pipeline.Inbox, out *pipeline.Outbox) error {
						for range 3 {
							v, ok, err := in.Recv(ctx)
							if err != nil || !ok {
								return err
							}
							if err := out.Send(ctx, v); err != nil {
								return err
							}
						}
						return nil
					})).
					Add("sink", sink)
			},
			wantErr: noErr,
			check: func(t *testing.T, _ *pipeline.Flow, sink *collector) {
				if got := sink.ints(t); len(got) != 3 {
					t.Fatalf("got %v, want 3 elements", got)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			parent, cancel := context.WithCancel(context.Background())
			if tt.parent != nil {
				parent, cancel = tt.parent()
			}
			defer cancel()
			sink := &collector{}
			f := pipeline.New(pipeline.Options{})
			tt.build(f, sink)
			if tt.cancel {
				go func() {
					time.Sleep(10 * time.Millisecond)
					cancel()
				}()
			}
			done := make(chan error, 1)
			go func() { done <- f.Run(parent) }()
			var err error
			select {
			case err = <-done:
			case <-time.After(5 * time.Second):
				buf := make([]byte, 1<<16)
				t.Fatalf("Run hangs:\n%s", buf[:runtime.Stack(buf, true)])
			}
			tt.wantErr(t, err)
			if tt.check != nil {
				tt.check(t, f, sink)
			}
			cancel()
			checkGoroutines(t, before)
		})
	}
}

func wantPanic(stage, msg string) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var pe *pipeline.PanicError
		if !errors.As(err, &pe) {
			t.Fatalf("Run = %v, want a *PanicError", err)
		}
		s := err.Error()
		if !strings.HasPrefix(s, `stage "`+stage+`": panic: `) || !strings.Contains(s, msg) {
			t.Fatalf("Run = %.200q, want stage %q and %q", s, stage, msg)
		}
		if !strings.Contains(s, "goroutine ") || !strings.Contains(s, "_test.go:") {
			t.Fatalf("error lacks the stack: %.500s", s)
		}
	}
}

func TestFlowMisuse(t *testing.T) {
	tests := []struct {
		name string
		run  func() error
		want string
	}{
		{"empty", func() error { return pipeline.New(pipeline.Options{}).Run(context.Background()) }, "no stages"},
		{"nil stage", func() error {
			return pipeline.New(pipeline.Options{}).Add("x", nil).Run(context.Background())
		}, `stage "x" is nil`},
		{"second run", func() error {
			f := pipeline.New(pipeline.Options{}).Add("src", ints(3, nil))
			if err := f.Run(context.Background()); err != nil {
				return err
			}
			return f.Run(context.Background())
		}, "twice"},
		{"cancelled before", func() error {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			err := pipeline.New(pipeline.Options{}).Add("src", ints(3, nil)).Run(ctx)
			if !errors.Is(err, context.Canceled) {
				return errors.New("not context.Canceled: " + err.Error())
			}
			return err
		}, "canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestFlowUnbuffered(t *testing.T) {
	sink := &collector{}
	f := pipeline.New(pipeline.Options{Buffer: -1}).Add("src", ints(20, nil)).Add("mid", pass()).Add("sink", sink)
	if err := f.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := sink.ints(t); len(got) != 20 {
		t.Fatalf("got %d elements", len(got))
	}
}

// TestDownstreamSeesFailure checks that a stage whose input is closed
// because the upstream stage failed does not take that for a normal end.
func TestDownstreamSeesFailure(t *testing.T) {
	for range 20 {
		var normalEnd atomic.Bool
		f := pipeline.New(pipeline.Options{}).
			Add("src", pipeline.StageFunc(func(context.Context, *pipeline.Inbox, *pipeline.Outbox) error { return errBoom })).
			Add("sink", pipeline.StageFunc(func(ctx context.Context, in *pipeline.Inbox, _ *pipeline.Outbox) error {
				for {
					_, ok, err := in.Recv(ctx)
					if err != nil {
						return err
					}
					if !ok {
						normalEnd.Store(true)
						return nil
					}
				}
			}))
		if err := f.Run(context.Background()); !errors.Is(err, errBoom) {
			t.Fatalf("Run = %v", err)
		}
		if normalEnd.Load() {
			t.Fatal("the sink saw a normal end after the source failed")
		}
	}
}

func TestSkips(t *testing.T) {
	skipThirds := func(_ context.Context, v int) (int, error) {
		if v%3 == 0 {
			return 0, pipeline.Skip("row "+string(rune('0'+v%10)), errors.New("bad image"))
		}
		return v, nil
	}
	tests := []struct {
		name      string
		max       int
		unordered bool
		wantErr   bool
		wantOut   int // elements reaching the sink when no error
	}{
		{"unlimited", -1, false, false, 20},
		{"within limit", 10, false, false, 20},
		{"within limit unordered", 10, true, false, 20},
		{"limit passed", 5, false, true, 0},
		{"none allowed", 0, true, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			sink := &collector{}
			f := pipeline.New(pipeline.Options{MaxBadSamples: tt.max}).
				Add("src", ints(30, nil)).
				Add("check", pipeline.Map(skipThirds, pipeline.PoolOptions{Workers: 3, Unordered: tt.unordered})).
				Add("sink", sink)
			err := f.Run(context.Background())
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), "too many bad samples") || !strings.HasPrefix(err.Error(), `stage "check"`) {
					t.Fatalf("Run = %v, want too many bad samples", err)
				}
				// Workers running at once may each count one more before
				// the cancellation reaches them.
				if n := f.Skips().Count(); n < tt.max+1 {
					t.Errorf("Count = %d, want at least %d", n, tt.max+1)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				got := sink.ints(t)
				if len(got) != tt.wantOut {
					t.Fatalf("got %d elements, want %d", len(got), tt.wantOut)
				}
				if !tt.unordered {
					for i := 1; i < len(got); i++ {
						if got[i] <= got[i-1] {
							t.Fatalf("order lost: %v", got)
						}
					}
				}
				if n := f.Skips().Count(); n != 10 {
					t.Errorf("Count = %d, want 10", n)
				}
				if ex := f.Skips().Examples(); len(ex) == 0 || !strings.Contains(ex[0], "bad image") {
					t.Errorf("Examples = %v", ex)
				}
			}
			checkGoroutines(t, before)
		})
	}
}

func TestReportSkip(t *testing.T) {
	skip := pipeline.Skip("a.png", errors.New("not an image"))
	other := errors.New("disk on fire")
	withFlow := pipeline.WithSkips(context.Background(), pipeline.NewSkips(1))
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want func(error) bool
	}{
		{"nil", withFlow, nil, func(e error) bool { return e == nil }},
		{"skip without flow", context.Background(), skip, func(e error) bool { return e == skip }},
		{"other without flow", context.Background(), other, func(e error) bool { return e == other }},
		{"other with flow", withFlow, other, func(e error) bool { return e == other }},
		{"skip within limit", withFlow, skip, func(e error) bool { return e == nil }},
		{"wrapped skip past limit", withFlow, errors.Join(skip), func(e error) bool {
			return e != nil && strings.Contains(e.Error(), "too many bad samples")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pipeline.ReportSkip(tt.ctx, tt.err); !tt.want(got) {
				t.Fatalf("ReportSkip = %v", got)
			}
		})
	}
	if pipeline.SkipsFrom(context.Background()) != nil {
		t.Error("SkipsFrom without a flow is not nil")
	}
}

// TestSkipsFromFlow checks that a plain stage reaches the flow's Skips.
func TestSkipsFromFlow(t *testing.T) {
	f := pipeline.New(pipeline.Options{MaxBadSamples: -1})
	var same atomic.Bool
	f.Add("src", pipeline.StageFunc(func(ctx context.Context, _ *pipeline.Inbox, _ *pipeline.Outbox) error {
		same.Store(pipeline.SkipsFrom(ctx) == f.Skips())
		return pipeline.ReportSkip(ctx, pipeline.Skip("row 1", errors.New("zero-size image")))
	}))
	if err := f.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !same.Load() || f.Skips().Count() != 1 {
		t.Fatalf("SkipsFrom is the flow's: %v, count %d", same.Load(), f.Skips().Count())
	}
}

// BenchmarkFlow measures elements per second through source → pass → sink.
func BenchmarkFlow(b *testing.B) {
	f := pipeline.New(pipeline.Options{}).Add("src", ints(b.N, nil)).Add("pass", pass()).Add("sink", &discard{})
	b.ResetTimer()
	if err := f.Run(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "elements/s")
}

type discard struct{}

func (discard) Run(ctx context.Context, in *pipeline.Inbox, _ *pipeline.Outbox) error {
	for {
		_, ok, err := in.Recv(ctx)
		if err != nil || !ok {
			return err
		}
	}
}
