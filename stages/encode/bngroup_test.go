package encode

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitAll runs parties goroutines that each hold a token of g's semaphore
// and wait at b's barrier, and returns their errors, failing the test if
// they do not all return within 10 s.
func waitAll(t *testing.T, g *gang, b *bnGroup, parties int, last func()) []error {
	t.Helper()
	errs := make([]error, parties)
	var wg sync.WaitGroup
	for i := range parties {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.acquire()
			defer g.release()
			errs[i] = b.wait(last)
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the parties still wait 10 s later")
	}
	return errs
}

// TestBNGroupBarrier: with one worker token for three parties, the barrier
// lets them all through (a waiting party gives its token back) and runs
// last once per round; a panic in last reaches every party as an error;
// an abort breaks the barrier for those waiting and those arriving later,
// until reset.
func TestBNGroupBarrier(t *testing.T) {
	g := newGang(1)
	b := newBNGroup(g, 3, 2, 4, 1, make([]float32, 4), make([]float32, 4), true)
	calls := 0
	for round := range 3 {
		for i, err := range waitAll(t, g, b, 3, func() { calls++ }) {
			if err != nil {
				t.Fatalf("round %d, party %d: %v", round, i, err)
			}
		}
	}
	if calls != 3 {
		t.Errorf("last ran %d times in 3 rounds", calls)
	}

	for i, err := range waitAll(t, g, b, 3, func() { panic("boom") }) {
		if err == nil || !strings.Contains(err.Error(), "boom") {
			t.Errorf("party %d after a panic in last: %v", i, err)
		}
	}
	g.reset()

	// Two parties wait; the third fails instead of arriving.
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			g.acquire()
			defer g.release()
			errs <- b.wait(func() { t.Error("last ran without the third party") })
		}()
	}
	time.Sleep(50 * time.Millisecond)
	fail := errors.New("shard 2 failed")
	g.abort(fail)
	for range 2 {
		select {
		case err := <-errs:
			if !errors.Is(err, errBroken) {
				t.Errorf("a waiting party got %v, want errBroken", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a waiting party still waits 10 s after the abort")
		}
	}
	if err := b.wait(func() {}); !errors.Is(err, errBroken) {
		t.Errorf("a party arriving after the abort got %v, want errBroken", err)
	}
	if err := g.failure(); err != fail {
		t.Errorf("failure() = %v, want the first abort's error", err)
	}
	g.abort(errors.New("a later failure"))
	if err := g.failure(); err != fail {
		t.Errorf("failure() after a second abort = %v, want the first's", err)
	}
	g.reset()
	for i, err := range waitAll(t, g, b, 3, func() {}) {
		if err != nil {
			t.Errorf("after reset, party %d: %v", i, err)
		}
	}
}
