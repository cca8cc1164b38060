//go:build race

package flows_test

// raceEnabled: the race detector slows the crash test's children about
// fivefold, past its two-minute budget; .ci/run runs it without -race.
const raceEnabled = true
