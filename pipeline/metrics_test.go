package pipeline_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/contrastream/contrastream/pipeline"
)

func TestMetrics(t *testing.T) {
	slowPlain := pipeline.StageFunc(func(ctx context.Context, in *pipeline.Inbox, out *pipeline.Outbox) error {
		for {
			v, ok, err := in.Recv(ctx)
			if err != nil || !ok {
				return err
			}
			time.Sleep(time.Millisecond)
			if err := out.Send(ctx, v); err != nil {
				return err
			}
		}
	})
	slowPool := pipeline.Map(func(_ context.Context, v int) (int, error) {
		time.Sleep(time.Millisecond)
		return v, nil
	}, pipeline.PoolOptions{Workers: 1})
	tests := []struct {
		name string
		slow pipeline.Stage
	}{
		{"plain stage", slowPlain},
		{"pool", slowPool},
	}
	const n = 30
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := pipeline.New(pipeline.Options{}).
				Add("src", ints(n, nil)).
				Add("fast", pipeline.Map(func(_ context.Context, v int) (int, error) { return v, nil }, pipeline.PoolOptions{Workers: 2})).
				Add("slow", tt.slow).
				Add("sink", &collector{})
			if m := f.Metrics(); len(m) != 4 || m[0].Wall != 0 || m[0].Name != "src" {
				t.Fatalf("Metrics before Run = %+v", m)
			}
			if err := f.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			snaps := f.Metrics()
			wantIO := [][2]int64{{0, n}, {n, n}, {n, n}, {n, 0}}
			for i, s := range snaps {
				if s.In != wantIO[i][0] || s.Out != wantIO[i][1] {
					t.Errorf("%s: in %d out %d, want %v", s.Name, s.In, s.Out, wantIO[i])
				}
				if s.Wall <= 0 {
					t.Errorf("%s: Wall = %v", s.Name, s.Wall)
				}
			}
			if snaps[1].Workers != 2 || snaps[0].Workers != 1 {
				t.Errorf("workers: %d %d", snaps[0].Workers, snaps[1].Workers)
			}
			if b := pipeline.Bottleneck(snaps); b != 2 {
				t.Errorf("bottleneck = %d, want 2 (slow); busy shares: %v", b, shares(snaps))
			}
			if sh := snaps[2].BusyShare(); sh < 0.5 {
				t.Errorf("slow stage busy share %.2f, want most of its time", sh)
			}
			var buf bytes.Buffer
			if err := pipeline.WriteMetrics(&buf, snaps); err != nil {
				t.Fatal(err)
			}
			out := buf.String()
			t.Logf("\n%s", out)
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 6 {
				t.Fatalf("want a header, 4 rows and a bottleneck line:\n%s", out)
			}
			for _, col := range []string{"stage", "workers", "in", "out", "items/s", "busy %", "wait-in %", "wait-out %"} {
				if !strings.Contains(lines[0], col) {
					t.Errorf("header lacks %q: %s", col, lines[0])
				}
			}
			// aligned: the column "workers" starts at the same offset everywhere
			at := strings.Index(lines[0], "workers")
			for _, l := range lines[1:5] {
				if len(l) <= at || l[at-1] != ' ' || l[at] == ' ' {
					t.Errorf("row not aligned with the header: %q", l)
				}
			}
			if !strings.HasPrefix(lines[5], `bottleneck: "slow"`) {
				t.Errorf("last line = %q", lines[5])
			}
		})
	}
}

func shares(snaps []pipeline.Snapshot) []float64 {
	out := make([]float64, len(snaps))
	for i, s := range snaps {
		out[i] = s.BusyShare()
	}
	return out
}

// TestMetricsWhileRunning reads metrics from another goroutine while the
// flow runs (meaningful under -race).
func TestMetricsWhileRunning(t *testing.T) {
	f := pipeline.New(pipeline.Options{}).
		Add("src", ints(2000, nil)).
		Add("pool", pipeline.Map(func(_ context.Context, v int) (int, error) { return v, nil }, pipeline.PoolOptions{Workers: 2})).
		Add("sink", &collector{})
	done := make(chan error, 1)
	go func() { done <- f.Run(context.Background()) }()
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			if s := f.Metrics()[2]; s.In != 2000 {
				t.Fatalf("sink in = %d", s.In)
			}
			return
		default:
			var buf bytes.Buffer
			if err := pipeline.WriteMetrics(&buf, f.Metrics()); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

func TestWriteMetricsByHand(t *testing.T) {
	snaps := []pipeline.Snapshot{
		{Name: "decode", Workers: 4, In: 100, Out: 100, Busy: 3 * time.Second, Wall: time.Second},
		{Name: "collate", Workers: 1, In: 100, Out: 10, WaitIn: 900 * time.Millisecond, Wall: time.Second},
		{Name: "idle"},
	}
	var buf bytes.Buffer
	if err := pipeline.WriteMetrics(&buf, snaps); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"75.0", "100.0", "10.0", "90.0", `bottleneck: "decode" (busy 75.0%`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// sleepy returns a source of n ints that sleeps d before each.
func sleepy(n int, d time.Duration) pipeline.Stage {
	return pipeline.StageFunc(func(ctx context.Context, _ *pipeline.Inbox, out *pipeline.Outbox) error {
		for i := range n {
			time.Sleep(d)
			if err := out.Send(ctx, i); err != nil {
				return err
			}
		}
		return nil
	})
}

// slowSink sleeps d after receiving each element.
func slowSink(d time.Duration) pipeline.Stage {
	return pipeline.StageFunc(func(ctx context.Context, in *pipeline.Inbox, _ *pipeline.Outbox) error {
		for {
			_, ok, err := in.Recv(ctx)
			if err != nil || !ok {
				return err
			}
			time.Sleep(d)
		}
	})
}

// waitShares are a snapshot's busy, wait-in and wait-out shares of Wall ×
// Workers.
func waitShares(s pipeline.Snapshot) (busy, in, out float64) {
	c := float64(s.Wall) * float64(s.Workers)
	return float64(s.Busy) / c, float64(s.WaitIn) / c, float64(s.WaitOut) / c
}

// TestPoolWaitShares checks that a pool's busy, wait-in and wait-out times
// say which neighbour holds it back, and that they add up to its workers'
// time. The sleeps are long and the bounds loose, so that a loaded machine
// does not make the test flaky.
func TestPoolWaitShares(t *testing.T) {
	const n, d = 40, 3 * time.Millisecond
	slowFn := func(_ context.Context, v int) (int, error) { time.Sleep(d); return v, nil }
	fastFn := func(_ context.Context, v int) (int, error) { return v, nil }
	tests := []struct {
		name      string
		src, sink pipeline.Stage
		fn        func(context.Context, int) (int, error)
		want      string // the share that must dominate: busy, in or out; "" none
	}{
		{"slow sink", ints(n, nil), slowSink(d), fastFn, "out"},
		{"slow source", sleepy(n, d), &collector{}, fastFn, "in"},
		{"slow fn", ints(n, nil), &collector{}, slowFn, "busy"},
		// The source keeps the two workers about busy: the pool waits for
		// input most of the time while its workers work.
		{"source as fast as the pool", sleepy(n, d/2), &collector{}, slowFn, ""},
		{"sink as fast as the pool", ints(n, nil), slowSink(d / 2), slowFn, ""},
	}
	for _, unordered := range []bool{false, true} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s unordered=%v", tt.name, unordered), func(t *testing.T) {
				pool := pipeline.Map(tt.fn, pipeline.PoolOptions{Workers: 2, Unordered: unordered})
				f := pipeline.New(pipeline.Options{}).Add("src", tt.src).Add("pool", pool).Add("sink", tt.sink)
				if err := f.Run(context.Background()); err != nil {
					t.Fatal(err)
				}
				s := f.Metrics()[1]
				busy, in, out := waitShares(s)
				t.Logf("wall %v × %d: busy %.2f, wait-in %.2f, wait-out %.2f", s.Wall, s.Workers, busy, in, out)
				if s.Workers != 2 || s.In != n || s.Out != n {
					t.Fatalf("workers %d, in %d, out %d", s.Workers, s.In, s.Out)
				}
				if sum := busy + in + out; sum < 0.9 || sum > 1.1 {
					t.Errorf("busy + wait-in + wait-out = %.2f of Wall × Workers, want about 1", sum)
				}
				if tt.want == "" {
					return
				}
				got := map[string]float64{"busy": busy, "in": in, "out": out}
				for k, v := range got {
					if k == tt.want && v < 0.6 {
						t.Errorf("%s share %.2f, want most of the time", k, v)
					}
					if k != tt.want && v > 0.35 {
						t.Errorf("%s share %.2f, want little (%s dominates)", k, v, tt.want)
					}
				}
			})
		}
	}
}

// TestPlainStageWaitShares checks WaitIn and WaitOut of a stage that is not
// a pool: a slow sink holds the stage before it back, a slow source starves
// the stage after it.
func TestPlainStageWaitShares(t *testing.T) {
	const n, d = 40, 3 * time.Millisecond
	tests := []struct {
		name      string
		src, sink pipeline.Stage
		want      string
	}{
		{"slow sink", ints(n, nil), slowSink(d), "out"},
		{"slow source", sleepy(n, d), &collector{}, "in"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := pipeline.New(pipeline.Options{}).Add("src", tt.src).Add("pass", pass()).Add("sink", tt.sink)
			if err := f.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			s := f.Metrics()[1]
			busy, in, out := waitShares(s)
			t.Logf("wall %v: busy %.2f, wait-in %.2f, wait-out %.2f", s.Wall, busy, in, out)
			got := map[string]float64{"busy": busy, "in": in, "out": out}
			for k, v := range got {
				if k == tt.want && v < 0.6 {
					t.Errorf("%s share %.2f, want most of the time", k, v)
				}
				if k != tt.want && v > 0.35 {
					t.Errorf("%s share %.2f, want little (%s dominates)", k, v, tt.want)
				}
			}
		})
	}
}

func TestAddWaitOutIsNotBusy(t *testing.T) {
	// A stage that waits 30 ms on something after it, outside its Outbox,
	// and reports it, shows that time as wait-out, not as work.
	stage := pipeline.StageFunc(func(ctx context.Context, in *pipeline.Inbox, out *pipeline.Outbox) error {
		time.Sleep(30 * time.Millisecond)
		in.Metrics().AddWaitOut(30 * time.Millisecond)
		return nil
	})
	f := pipeline.New(pipeline.Options{}).Add("held", stage)
	if err := f.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	m := f.Metrics()[0]
	if m.WaitOut < 30*time.Millisecond || m.Busy > m.Wall/2 {
		t.Errorf("wait-out %v busy %v of wall %v: the reported wait counts as work", m.WaitOut, m.Busy, m.Wall)
	}
}
