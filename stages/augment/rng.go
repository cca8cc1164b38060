package augment

import (
	"math"
	"math/bits"
	"math/rand/v2"
)

// The random streams of one view. Each transform draws from its own stream,
// so that turning one transform on or off does not change the parameters of
// the others.
const (
	streamCrop uint64 = iota + 1
	streamFlip
	streamRotation
	streamJitter
	streamGray
	streamBlur
	streamSolarize
)

// splitmix64 is the finaliser of SplitMix64: a bijective 64-bit mix.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// viewKey hashes (seed, epoch, index, view) into the key of one view's
// random streams.
func viewKey(seed int64, epoch int, index int64, view int) uint64 {
	k := splitmix64(uint64(seed))
	k = splitmix64(k ^ uint64(epoch))
	k = splitmix64(k ^ uint64(index))
	return splitmix64(k ^ uint64(view))
}

// rng is a PCG stream held by value, so that drawing allocates nothing.
type rng struct{ pcg rand.PCG }

func newRNG(key, stream uint64) rng {
	var r rng
	r.pcg.Seed(key, splitmix64(key^(stream*0xd1342543de82ef95)))
	return r
}

// float64 is uniform in [0, 1).
func (r *rng) float64() float64 { return float64(r.pcg.Uint64()>>11) * (1.0 / (1 << 53)) }

// uniform is uniform in [lo, hi).
func (r *rng) uniform(lo, hi float64) float64 { return lo + (hi-lo)*r.float64() }

// intn is uniform in [0, n), n > 0.
func (r *rng) intn(n int) int {
	hi, _ := bits.Mul64(r.pcg.Uint64(), uint64(n))
	return int(hi)
}

// bernoulli is true with probability p. It always draws, so the stream's
// position does not depend on p.
func (r *rng) bernoulli(p float64) bool { return r.float64() < p }

// factor draws a torchvision jitter factor U(max(0, 1−s), 1+s).
func (r *rng) factor(s float64) float64 { return r.uniform(math.Max(0, 1-s), 1+s) }
