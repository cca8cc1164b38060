package sinks

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Progress is a one-line progress display for long work (ingest, training).
// On a terminal it redraws one line in place; elsewhere (a log file, CI) it
// prints a line every Every. It is safe for concurrent use: workers call
// Add, one goroutine draws.
//
//	ingest  12,000/60,000  20.0%  3,512/s  ETA 14s
type Progress struct {
	// Label starts the line.
	Label string
	// Total is the number of items expected; 0 when unknown (no percentage
	// or ETA is shown then).
	Total int64
	// Unit names the items ("images", "batches"); default "items".
	Unit string
	// Every is how often a line is drawn; default 250ms on a terminal and
	// 5s elsewhere.
	Every time.Duration
	// Extra, when set, is called at each draw and its text appended.
	Extra func() string
	// Count, when set, is called at each draw for the number of items done,
	// instead of the caller calling Add or Set (for work whose progress can
	// be read, such as a flow's metrics).
	Count func() int64

	w     io.Writer
	tty   bool
	mu    sync.Mutex
	done  int64
	start time.Time
	stop  chan struct{}
	wg    sync.WaitGroup
}

// Start begins drawing to w (os.Stderr when nil) and returns p.
func (p *Progress) Start(w io.Writer) *Progress {
	if w == nil {
		w = os.Stderr
	}
	p.w = w
	p.tty = isTerminal(w)
	if p.Every == 0 {
		p.Every = 5 * time.Second
		if p.tty {
			p.Every = 250 * time.Millisecond
		}
	}
	if p.Unit == "" {
		p.Unit = "items"
	}
	p.start = time.Now()
	p.stop = make(chan struct{})
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(p.Every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.draw(false)
			case <-p.stop:
				return
			}
		}
	}()
	return p
}

// Add counts n more items done.
func (p *Progress) Add(n int64) {
	p.mu.Lock()
	p.done += n
	p.mu.Unlock()
}

// Set sets the number of items done.
func (p *Progress) Set(n int64) {
	p.mu.Lock()
	p.done = n
	p.mu.Unlock()
}

// SetTotal changes the number of items expected.
func (p *Progress) SetTotal(n int64) {
	p.mu.Lock()
	p.Total = n
	p.mu.Unlock()
}

// Done stops the display and draws the final line.
func (p *Progress) Done() {
	if p.stop == nil {
		return
	}
	close(p.stop)
	p.wg.Wait()
	p.stop = nil
	p.draw(true)
}

// Line renders the current state without drawing it.
func (p *Progress) Line() string {
	if p.Count != nil {
		p.Set(p.Count())
	}
	p.mu.Lock()
	done, total := p.done, p.Total
	p.mu.Unlock()
	el := time.Since(p.start)
	rate := float64(done) / max(el.Seconds(), 1e-9)
	var b strings.Builder
	b.WriteString(p.Label)
	if total > 0 {
		fmt.Fprintf(&b, "  %s/%s %s  %5.1f%%", Count(done), Count(total), p.Unit, 100*float64(done)/float64(total))
	} else {
		fmt.Fprintf(&b, "  %s %s", Count(done), p.Unit)
	}
	if rate < 10 {
		fmt.Fprintf(&b, "  %.2f/s", rate) // slow items (training steps): keep the fraction
	} else {
		fmt.Fprintf(&b, "  %s/s", Count(int64(rate)))
	}
	if total > 0 && rate > 0 && done < total {
		eta := time.Duration(float64(total-done) / rate * float64(time.Second))
		fmt.Fprintf(&b, "  ETA %s", eta.Round(time.Second))
	} else {
		fmt.Fprintf(&b, "  %s", el.Round(100*time.Millisecond))
	}
	if p.Extra != nil {
		b.WriteString("  ")
		b.WriteString(p.Extra())
	}
	return b.String()
}

func (p *Progress) draw(final bool) {
	// The label and the note may name a flow or a checkpoint: escape them,
	// so that only the display's own sequences reach the terminal.
	line := Printable(p.Line())
	switch {
	case p.tty && final:
		fmt.Fprintf(p.w, "\r\033[K%s\n", line)
	case p.tty:
		fmt.Fprintf(p.w, "\r\033[K%s", line)
	default:
		fmt.Fprintln(p.w, line)
	}
}

// Count formats n with thousands separators: 12345 → "12,345".
func Count(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
