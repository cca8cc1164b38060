package pipeline

import (
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// StageMetrics are the live counters of one stage. All fields are updated
// atomically, so the workers of a stage and a progress display may use one
// StageMetrics concurrently; read them with Snapshot.
//
// The runner makes one StageMetrics per stage and hands the same one to the
// stage's Inbox and Outbox; a stage that runs its own goroutines reaches it
// through Inbox.Metrics or Outbox.Metrics.
type StageMetrics struct {
	in, out         atomic.Int64
	waitIn, waitOut atomic.Int64 // nanoseconds, summed over the stage's workers
	busy            atomic.Int64 // nanoseconds of work, summed over workers; set by pools, else derived
	workers         atomic.Int64 // 0 means 1
	measured        atomic.Bool  // busy is measured (by AddBusy or a pool), not derived
}

// AddBusy records d of work done by one worker of the stage, for a stage
// that runs its own workers; once it is called, the stage's busy time is
// what was added rather than derived from its wall time. The pools of this
// package measure their workers' time themselves.
func (m *StageMetrics) AddBusy(d time.Duration) {
	m.measured.Store(true)
	m.busy.Add(int64(d))
}

// AddWaitOut records d that the stage spent held back by a stage after it
// other than through its Outbox: the encode stage waiting for the optimize
// stage to finish the previous step, say. A stage whose busy time is
// derived then no longer counts that wait as work.
func (m *StageMetrics) AddWaitOut(d time.Duration) { m.waitOut.Add(int64(d)) }

// SetWorkers records how many goroutines work for the stage. Worker pools
// call it when they start; a stage that never calls it counts as one worker.
func (m *StageMetrics) SetWorkers(n int) { m.workers.Store(int64(n)) }

// Snapshot reads the counters. Name and Wall are left empty: the Flow that
// owns the stage fills them (see Flow.Metrics).
func (m *StageMetrics) Snapshot() Snapshot {
	w := int(m.workers.Load())
	if w < 1 {
		w = 1
	}
	return Snapshot{
		Workers: w,
		In:      m.in.Load(),
		Out:     m.out.Load(),
		Busy:    time.Duration(m.busy.Load()),
		WaitIn:  time.Duration(m.waitIn.Load()),
		WaitOut: time.Duration(m.waitOut.Load()),
	}
}

// Metrics returns the counters that Recv updates, so that a stage running
// its own goroutines can record busy time (AddBusy) and its worker count.
func (in *Inbox) Metrics() *StageMetrics {
	if in == nil {
		return nil
	}
	return in.m
}

// Metrics returns the counters that Send updates.
func (out *Outbox) Metrics() *StageMetrics {
	if out == nil {
		return nil
	}
	return out.m
}

// stageMetrics is the StageMetrics a stage should record into: the one of
// its Inbox (the runner gives both boxes the same one), else its Outbox's,
// else a throw-away one.
func stageMetrics(in *Inbox, out *Outbox) *StageMetrics {
	if m := in.Metrics(); m != nil {
		return m
	}
	if m := out.Metrics(); m != nil {
		return m
	}
	return &StageMetrics{}
}

// Snapshot is a copy of a stage's metrics at one moment.
//
// Times are summed over the stage's workers and are best read as shares of
// Wall × Workers. For a pool (Map, MapWorkers) each worker's time is split
// into Busy, WaitIn and WaitOut, so the three add up to about Wall ×
// Workers. A plain stage measures WaitIn and WaitOut in Recv and Send and
// its Busy is the rest of its wall time.
type Snapshot struct {
	// Name is the stage's name in its Flow; empty from StageMetrics.Snapshot.
	Name string
	// Workers is the number of goroutines that work for the stage, at
	// least 1.
	Workers int
	// In is the number of elements the stage received.
	In int64
	// Out is the number of elements the stage sent.
	Out int64
	// Busy is the time spent working, summed over workers.
	Busy time.Duration
	// WaitIn is the time spent waiting for input, summed over workers; a
	// stage that waits for input a lot is starved by the stage before it.
	WaitIn time.Duration
	// WaitOut is the time spent blocked handing results on (on a full
	// output buffer; in an order-keeping pool also on earlier elements that
	// are still being worked on), summed over workers; a stage that waits
	// on output a lot is held back by the stage after it.
	WaitOut time.Duration
	// Wall is the time from the stage's start to its end (or to now); zero
	// before it starts and in StageMetrics.Snapshot.
	Wall time.Duration
}

// capacity is the worker time available to the stage: Wall × Workers.
func (s Snapshot) capacity() time.Duration {
	w := s.Workers
	if w < 1 {
		w = 1
	}
	return s.Wall * time.Duration(w)
}

// BusyShare is Busy as a fraction of Wall × Workers, in [0, 1] up to
// measuring noise; 0 when Wall is 0.
func (s Snapshot) BusyShare() float64 { return share(s.Busy, s.capacity()) }

// Rate is the stage's throughput in elements per second of wall time: the
// elements it received, or for a source the elements it sent.
func (s Snapshot) Rate() float64 {
	if s.Wall <= 0 {
		return 0
	}
	n := s.In
	if n == 0 {
		n = s.Out
	}
	return float64(n) / s.Wall.Seconds()
}

func share(d, of time.Duration) float64 {
	if of <= 0 {
		return 0
	}
	return float64(d) / float64(of)
}

// deriveBusy fills Busy for a stage that does not measure it itself: the
// part of its wall time not spent waiting.
func deriveBusy(s Snapshot) Snapshot {
	b := s.capacity() - s.WaitIn - s.WaitOut
	if b < 0 {
		b = 0
	}
	s.Busy = b
	return s
}

// Bottleneck returns the index of the stage with the highest busy share,
// or -1 when no stage has run.
func Bottleneck(snaps []Snapshot) int {
	best, bestShare := -1, -1.0
	for i, s := range snaps {
		if s.Wall <= 0 {
			continue
		}
		if sh := s.BusyShare(); sh > bestShare {
			best, bestShare = i, sh
		}
	}
	return best
}

// WriteMetrics writes snaps as an aligned table, one row per stage:
//
//	stage    workers  in   out  items/s  busy %  wait-in %  wait-out %
//
// The percentages are of Wall × Workers. items/s counts the elements a
// stage received (a source: sent) per second of its wall time. A last line
// names the likely bottleneck, the stage with the highest busy share. A
// Snapshot with Busy 0 and one worker is taken to be a plain stage whose
// busy time is Wall − WaitIn − WaitOut.
func WriteMetrics(w io.Writer, snaps []Snapshot) error {
	rows := make([]Snapshot, len(snaps))
	for i, s := range snaps {
		if s.Busy == 0 && s.Workers <= 1 {
			s = deriveBusy(s)
		}
		rows[i] = s
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "stage\tworkers\tin\tout\titems/s\tbusy %\twait-in %\twait-out %")
	pct := func(s Snapshot, d time.Duration) string {
		if s.Wall <= 0 {
			return "-"
		}
		return strconv.FormatFloat(100*share(d, s.capacity()), 'f', 1, 64)
	}
	for _, s := range rows {
		rate := "-"
		if s.Wall > 0 {
			rate = strconv.FormatFloat(s.Rate(), 'f', 1, 64)
		}
		workers := s.Workers
		if workers < 1 {
			workers = 1
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\n", s.Name, workers, s.In, s.Out,
			rate, pct(s, s.Busy), pct(s, s.WaitIn), pct(s, s.WaitOut))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if b := Bottleneck(rows); b >= 0 {
		_, err := fmt.Fprintf(w, "bottleneck: %q (busy %.1f%% of its workers' time)\n",
			rows[b].Name, 100*rows[b].BusyShare())
		return err
	}
	return nil
}
