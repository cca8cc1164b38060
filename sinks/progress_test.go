package sinks

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestCount(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{{0, "0"}, {999, "999"}, {1000, "1,000"}, {123456789, "123,456,789"}, {-4200, "-4,200"}} {
		if got := Count(tc.n); got != tc.want {
			t.Errorf("Count(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

// TestProgressEscapesLabel: a label or note naming a flow or checkpoint
// with escape sequences is drawn escaped.
func TestProgressEscapesLabel(t *testing.T) {
	var buf bytes.Buffer
	p := (&Progress{Label: "train evil\x1b[2J", Total: 2, Every: time.Hour,
		Extra: func() string { return "ckpt \u202eabc" }}).Start(&buf)
	p.Set(2)
	p.Done()
	out := buf.String()
	if strings.ContainsAny(out, "\x1b\u202e") || !strings.Contains(out, `train evil\x1b[2J  2/2 items`) || !strings.Contains(out, `ckpt \u202eabc`) {
		t.Errorf("output %q: want the label and note escaped", out)
	}
}

func TestProgressLines(t *testing.T) {
	var buf bytes.Buffer
	p := (&Progress{Label: "ingest", Total: 200, Unit: "images", Every: time.Hour,
		Extra: func() string { return "bad 0" }}).Start(&buf)
	p.Add(50)
	if line := p.Line(); !strings.Contains(line, "50/200 images") || !strings.Contains(line, "25.0%") || !strings.Contains(line, "ETA") {
		t.Errorf("line %q lacks count, percentage or ETA", line)
	}
	p.Set(200)
	p.Done()
	out := buf.String()
	if strings.Count(out, "\n") != 1 || !strings.Contains(out, "200/200 images") || !strings.Contains(out, "bad 0") {
		t.Errorf("final output %q: want one line with the full count and the extra text", out)
	}
	if strings.Contains(out, "\r") {
		t.Errorf("a non-terminal writer got carriage returns: %q", out)
	}
}
