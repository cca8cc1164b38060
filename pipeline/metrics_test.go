package pipeline_test

import (
	"bytes"
	"context"
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
