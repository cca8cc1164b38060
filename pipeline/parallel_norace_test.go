//go:build !race

package pipeline_test

import (
	"testing"

	"github.com/contrastream/contrastream/pipeline"
)

// A Team that keeps its task function runs without allocating, on one
// goroutine, on several, and with more tasks than goroutines. (Under the
// race detector allocation counts mean nothing.)
func TestTeamNoAllocs(t *testing.T) {
	for _, tc := range []struct{ n, workers int }{{1, 1}, {4, 4}, {64, 3}, {9, 0}} {
		var tm pipeline.Team
		out := make([]int, tc.n)
		f := func(_, i int) error { out[i]++; return nil }
		run := func() {
			if err := tm.Run(tc.n, tc.workers, f); err != nil {
				t.Fatal(err)
			}
		}
		run() // the goroutines' functions are made on first use
		if a := testing.AllocsPerRun(100, run); a != 0 {
			t.Errorf("n=%d workers=%d: %v allocations per Run, want 0", tc.n, tc.workers, a)
		}
	}
}
