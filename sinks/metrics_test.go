package sinks

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/contrastream/contrastream/pipeline"
)

func TestMetricsLog(t *testing.T) {
	var buf bytes.Buffer
	l := NewMetricsLog(&buf)
	steps := []pipeline.StepMetrics{
		{Step: 0, Samples: 256, Loss: 5.0, LR: 0.06, Seconds: 0.5},
		{Step: 1, Samples: 256, Loss: 4.0, LR: 0.05, Seconds: 0.5},
		{Step: 2, Samples: 128, Loss: 4.5, LR: 0.04, Seconds: 0.25},
	}
	src := pipeline.StageFunc(func(ctx context.Context, _ *pipeline.Inbox, out *pipeline.Outbox) error {
		for i := range steps {
			if err := out.Send(ctx, &steps[i]); err != nil {
				return err
			}
		}
		return out.Send(ctx, "not a step") // ignored
	})
	if err := pipeline.New(pipeline.Options{}).Add("steps", src).Add("metrics", l.Stage()).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&buf)
	var n int
	for sc.Scan() {
		var m pipeline.StepMetrics
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %d: %v", n, err)
		}
		if m != steps[n] {
			t.Errorf("line %d: %+v, want %+v", n, m, steps[n])
		}
		n++
	}
	if n != 3 {
		t.Fatalf("%d lines, want 3", n)
	}
	s := l.Summary()
	want := MetricsSummary{Steps: 3, Samples: 640, FirstLoss: 5, LastLoss: 4.5, MinLoss: 4, Seconds: 1.25, SamplesPerSec: 512}
	if s != want {
		t.Errorf("summary %+v, want %+v", s, want)
	}
}
