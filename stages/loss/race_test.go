//go:build race

package loss_test

// raceEnabled: under the race detector sync.Pool drops items on purpose,
// so InfoNCE's SGEMM kernel (which pools its packing buffers) allocates
// at random and allocation counts mean nothing.
const raceEnabled = true
