package pipeline_test

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reugn/go-streams/extension"
	"github.com/reugn/go-streams/flow"

	"github.com/contrastream/contrastream/pipeline"
)

func TestFromStreams(t *testing.T) {
	double := func(v int) int { return 2 * v }
	odd := func(v int) bool { return v%2 == 1 }
	tests := []struct {
		name    string
		stages  func() []pipeline.Stage
		n       int // source length; < 0 endless
		limit   int // sink limit
		cancel  bool
		want    []int
		wantErr error
	}{
		{
			name:   "map",
			stages: func() []pipeline.Stage { return []pipeline.Stage{pipeline.FromStreams(flow.NewMap(double, 1))} },
			n:      5,
			want:   []int{0, 2, 4, 6, 8},
		},
		{
			name:   "filter",
			stages: func() []pipeline.Stage { return []pipeline.Stage{pipeline.FromStreams(flow.NewFilter(odd, 1))} },
			n:      8,
			want:   []int{1, 3, 5, 7},
		},
		{
			name: "filter then map",
			stages: func() []pipeline.Stage {
				return []pipeline.Stage{pipeline.FromStreams(flow.NewFilter(odd, 1)), pipeline.FromStreams(flow.NewMap(double, 1))}
			},
			n:    6,
			want: []int{2, 6, 10},
		},
		{
			name: "sink ends early",
			stages: func() []pipeline.Stage {
				return []pipeline.Stage{pipeline.FromStreams(flow.NewMap(double, 2)), pipeline.FromStreams(flow.NewFilter(func(int) bool { return true }, 2))}
			},
			n:     -1,
			limit: 4,
		},
		{
			name:    "parent cancelled",
			stages:  func() []pipeline.Stage { return []pipeline.Stage{pipeline.FromStreams(flow.NewMap(double, 2))} },
			n:       -1,
			cancel:  true,
			wantErr: context.Canceled,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			stages := tt.stages() // go-streams operators start goroutines here
			sink := &collector{limit: tt.limit}
			f := pipeline.New(pipeline.Options{}).Add("src", ints(tt.n, nil))
			for i, s := range stages {
				f.Add("streams"+string(rune('0'+i)), s)
			}
			f.Add("sink", sink)
			if tt.cancel {
				time.AfterFunc(10*time.Millisecond, cancel)
			}
			err := f.Run(ctx)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Run = %v, want %v", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			got := sink.ints(t)
			if tt.want != nil && !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			if tt.limit > 0 && len(got) != tt.limit {
				t.Fatalf("got %d elements, want %d", len(got), tt.limit)
			}
			checkGoroutines(t, before)
		})
	}
}

func TestFromStreamsRunsOnce(t *testing.T) {
	s := pipeline.FromStreams(flow.NewPassThrough())
	if err := pipeline.New(pipeline.Options{}).Add("src", ints(2, nil)).Add("pt", s).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	err := pipeline.New(pipeline.Options{}).Add("src", ints(2, nil)).Add("pt", s).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "only once") {
		t.Fatalf("second run: %v", err)
	}
}

func TestAsStreams(t *testing.T) {
	double := pipeline.Map(func(_ context.Context, v int) (int, error) { return 2 * v, nil }, pipeline.PoolOptions{Workers: 2})
	tests := []struct {
		name string
		run  func(ctx context.Context, in []int) ([]int, error)
		want []int
	}{
		{
			name: "flow between go-streams operators",
			run: func(ctx context.Context, in []int) ([]int, error) {
				src := make(chan any, len(in))
				for _, v := range in {
					src <- v
				}
				close(src)
				out := make(chan any)
				sf := pipeline.AsStreamsFlow(ctx, double)
				go extension.NewChanSource(src).
					Via(flow.NewFilter(func(v int) bool { return v%2 == 1 }, 1)).
					Via(sf).
					Via(flow.NewMap(func(v int) int { return v + 1 }, 1)).
					To(extension.NewChanSink(out))
				got := drainInts(out)
				return got, sf.Wait()
			},
			want: []int{3, 7, 11},
		},
		{
			name: "source and sink",
			run: func(ctx context.Context, in []int) ([]int, error) {
				sink := &collector{}
				k := pipeline.AsStreamsSink(ctx, sink)
				src := pipeline.AsStreamsSource(ctx, ints(len(in), nil))
				src.Via(flow.NewMap(func(v int) int { return v * 10 }, 1)).To(k)
				if err := src.Wait(); err != nil {
					return nil, err
				}
				if err := k.Wait(); err != nil {
					return nil, err
				}
				got := make([]int, len(sink.got))
				for i, v := range sink.got {
					got[i] = v.(int)
				}
				return got, nil
			},
			want: []int{0, 10, 20, 30, 40, 50},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			got, err := tt.run(context.Background(), []int{0, 1, 2, 3, 4, 5})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			checkGoroutines(t, before)
		})
	}
}

// TestAsStreamsError checks that a failing stage ends the go-streams flow
// (its Out is closed) and that Wait reports the error.
func TestAsStreamsError(t *testing.T) {
	before := runtime.NumGoroutine()
	failing := pipeline.Map(func(_ context.Context, v int) (int, error) {
		if v == 2 {
			return 0, errBoom
		}
		return v, nil
	}, pipeline.PoolOptions{Workers: 1})
	src := make(chan any)
	go func() { // a finite upstream that cannot be cancelled
		for i := range 10 {
			src <- i
		}
		close(src)
	}()
	sf := pipeline.AsStreamsFlow(context.Background(), failing)
	out := make(chan any)
	go extension.NewChanSource(src).Via(sf).To(extension.NewChanSink(out))
	got := drainInts(out)
	if err := sf.Wait(); !errors.Is(err, errBoom) {
		t.Fatalf("Wait = %v", err)
	}
	if len(got) > 2 {
		t.Fatalf("got %v after the failure", got)
	}
	checkGoroutines(t, before)
}

func drainInts(ch <-chan any) []int {
	var out []int
	for v := range ch {
		out = append(out, v.(int))
	}
	return out
}
