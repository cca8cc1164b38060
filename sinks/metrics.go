package sinks

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"

	"github.com/contrastream/contrastream/pipeline"
)

// MetricsSummary sums up a run's step metrics.
type MetricsSummary struct {
	Steps         int64   `json:"steps"`
	Samples       int64   `json:"samples"`
	FirstLoss     float64 `json:"first_loss"`
	LastLoss      float64 `json:"last_loss"`
	MinLoss       float64 `json:"min_loss"`
	Seconds       float64 `json:"seconds"`
	SamplesPerSec float64 `json:"samples_per_s"`
}

// MetricsLog writes one JSON line per step (pipeline.StepMetrics) to w and
// keeps a summary. It is the "metrics" sink of the training flows; it is
// not safe for concurrent use (a flow runs a sink in one goroutine).
type MetricsLog struct {
	w   io.Writer
	sum MetricsSummary
	enc *json.Encoder
}

// NewMetricsLog writes to w.
func NewMetricsLog(w io.Writer) *MetricsLog {
	return &MetricsLog{w: w, enc: json.NewEncoder(w), sum: MetricsSummary{MinLoss: math.Inf(1)}}
}

// Write records one step.
func (l *MetricsLog) Write(m pipeline.StepMetrics) error {
	if err := l.enc.Encode(m); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	l.Count(m)
	return nil
}

// Count adds m to the summary without writing it: a step an earlier
// process wrote (a resumed run's summary covers the whole run).
func (l *MetricsLog) Count(m pipeline.StepMetrics) {
	if l.sum.Steps == 0 {
		l.sum.FirstLoss = m.Loss
	}
	l.sum.Steps++
	l.sum.Samples += int64(m.Samples)
	l.sum.LastLoss = m.Loss
	l.sum.MinLoss = min(l.sum.MinLoss, m.Loss)
	l.sum.Seconds += m.Seconds
	if l.sum.Seconds > 0 {
		l.sum.SamplesPerSec = float64(l.sum.Samples) / l.sum.Seconds
	}
}

// Summary returns the summary so far.
func (l *MetricsLog) Summary() MetricsSummary {
	s := l.sum
	if s.Steps == 0 {
		s.MinLoss = 0
	}
	return s
}

// Stage returns the sink stage: it writes every *pipeline.StepMetrics or
// pipeline.StepMetrics it receives, and ignores other elements.
func (l *MetricsLog) Stage() pipeline.Stage {
	return pipeline.StageFunc(func(ctx context.Context, in *pipeline.Inbox, _ *pipeline.Outbox) error {
		for {
			v, ok, err := in.Recv(ctx)
			if !ok || err != nil {
				return err
			}
			switch m := v.(type) {
			case pipeline.StepMetrics:
				err = l.Write(m)
			case *pipeline.StepMetrics:
				err = l.Write(*m)
			}
			if err != nil {
				return err
			}
		}
	})
}
