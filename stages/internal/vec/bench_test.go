package vec

import (
	"math/rand/v2"
	"runtime"
	"testing"
)

// BenchmarkVec reports GB/s (of the values read and written, wall and, as
// cpuGB/s, of this thread's CPU time, which other processes on a shared
// machine disturb less) for each function and kernel, on one BatchNorm
// segment (784 values: in L1) and on a conv1 activation of 128 images
// (128×32×28×28 values, 12.8 MB: from memory).
func BenchmarkVec(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	const big = 128 * 32 * 28 * 28
	x, g, y, o := data(rng, big, 0, 0.5), data(rng, big, 0, 0), data(rng, big, 0, 0), make([]float32, big)
	idx := make([]int32, big/4)
	var sink float64
	fns := []struct {
		name    string
		streams int // values read and written per value
		f       func(n int)
	}{
		{"Sum", 1, func(n int) { sink += Sum(x[:n]) }},
		{"SumSqDev", 1, func(n int) { sink += SumSqDev(x[:n], 0.5) }},
		{"DotDevReLU", 3, func(n int) { d, _ := DotDevReLU(y[:n], g[:n], x[:n], 0.5); sink += d }},
		{"ScaleShiftReLU", 2, func(n int) { ScaleShiftReLU(o[:n], x[:n], 1.5, 0.25) }},
		{"ReluMask", 3, func(n int) { ReluMask(o[:n], y[:n], g[:n]) }},
		{"BNGradInputReLU", 4, func(n int) { BNGradInputReLU(o[:n], y[:n], g[:n], x[:n], 1.5, 0.1, 0.5, 0.2) }},
		{"Add", 3, func(n int) { Add(o[:n], x[:n]) }},
		// planes of 28×28: reads x, writes y and idx (a quarter each).
		{"MaxPool2", 1, func(n int) { MaxPool2(o[:n/4], idx[:n/4], x[:n], n/784, 28, 28, 0) }},
		// reads dy and idx (a quarter each), writes dx.
		{"MaxPool2Grad", 1, func(n int) { MaxPool2Grad(o[:n], x[:n/4], idx[:n/4], n/784, 28, 28, 0) }},
	}
	for _, kern := range []string{"go", "avx512"} {
		if kern == "avx512" && !hasAVX512 {
			continue
		}
		for _, f := range fns {
			for _, n := range []int{784, big} {
				name := "L1"
				if n == big {
					name = "mem"
				}
				b.Run(kern+"/"+f.name+"/"+name, func(b *testing.B) {
					old := useAVX512
					useAVX512 = kern == "avx512"
					defer func() { useAVX512 = old }()
					runtime.LockOSThread()
					defer runtime.UnlockOSThread()
					f.f(n)
					t0, ok := cpuTime(true)
					for b.Loop() {
						f.f(n)
					}
					t1, _ := cpuTime(true)
					bytes := float64(4*f.streams*n) * float64(b.N)
					b.ReportMetric(bytes/b.Elapsed().Seconds()/1e9, "GB/s")
					if ok && t1 > t0 {
						b.ReportMetric(bytes/(t1-t0).Seconds()/1e9, "cpuGB/s")
					}
				})
			}
		}
	}
	_ = sink
}
