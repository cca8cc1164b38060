package sgemm

import (
	"math/rand/v2"
	"runtime"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// convShape is one matrix product of the convnet-s encoder for a batch of
// 256 32×32 images, the batch merged into one GEMM.
type convShape struct {
	name           string
	transA, transB bool
	m, n, k        int
}

var convShapes = []convShape{
	{"conv1-fwd", false, false, 32, 200704, 9},
	{"conv2-fwd", false, false, 64, 50176, 288},
	{"conv3-fwd", false, false, 128, 12544, 576},
	{"conv2-bwd-data", true, false, 288, 50176, 64},
	{"conv3-bwd-data", true, false, 576, 12544, 128},
	{"conv2-bwd-weights", false, true, 64, 288, 50176},
	{"conv3-bwd-weights", false, true, 128, 576, 12544},
}

// imageShapes are the same products for one image, as the encoder runs
// them per image: n (or m, k) = 49, 196, 784 are not multiples of the
// kernels' tiles, so the edge tiles weigh.
var imageShapes = []convShape{
	{"conv3-fwd-img", false, false, 128, 49, 576},
	{"conv3-bwd-data-img", true, false, 576, 49, 128},
	{"conv2-fwd-img", false, false, 64, 196, 288},
	{"conv2-bwd-data-img", true, false, 288, 196, 64},
	{"conv1-fwd-img", false, false, 32, 784, 9},
	{"conv2-bwd-weights-img", false, true, 64, 288, 196},
	{"conv3-bwd-weights-img", false, true, 128, 576, 49},
}

var squareShapes = []convShape{
	{"square-512", false, false, 512, 512, 512},
	{"square-1024", false, false, 1024, 1024, 1024},
}

// BenchmarkGemm reports GFLOP/s of Gemm (one goroutine), GemmParallel(2)
// and gonum's Sgemm (which uses GOMAXPROCS goroutines: run with -cpu 1 for
// one core) on the convolution and square shapes.
func BenchmarkGemm(b *testing.B) {
	impl := gonum.Implementation{}
	for _, s := range append(convShapes, squareShapes...) {
		rng := rand.New(rand.NewPCG(1, 1))
		var o operands
		b.Run(s.name, func(b *testing.B) {
			if o.a == nil {
				o = newOperands(rng, s.transA, s.transB, s.m, s.n, s.k, 0)
			}
			flops := 2 * float64(s.m) * float64(s.n) * float64(s.k)
			// run reports GFLOP/s of wall time and, as cpuGFLOP/s, of
			// CPU time (of this thread for one goroutine, of the process
			// otherwise), which other processes on a shared machine
			// disturb less.
			run := func(b *testing.B, thread bool, f func()) {
				if thread {
					runtime.LockOSThread()
					defer runtime.UnlockOSThread()
				}
				f()
				t0, ok := cpuTime(thread)
				for b.Loop() {
					f()
				}
				t1, _ := cpuTime(thread)
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				if ok {
					b.ReportMetric(flops*float64(b.N)/(t1-t0).Seconds()/1e9, "cpuGFLOP/s")
				}
			}
			b.Run("Gemm", func(b *testing.B) {
				run(b, true, func() { Gemm(s.transA, s.transB, s.m, s.n, s.k, 1, o.a, o.lda, o.b, o.ldb, 0, o.c, o.ldc) })
			})
			b.Run("Parallel2", func(b *testing.B) {
				run(b, false, func() {
					GemmParallel(2, s.transA, s.transB, s.m, s.n, s.k, 1, o.a, o.lda, o.b, o.ldb, 0, o.c, o.ldc)
				})
			})
			b.Run("gonum", func(b *testing.B) {
				ta, tb := blas.NoTrans, blas.NoTrans
				if s.transA {
					ta = blas.Trans
				}
				if s.transB {
					tb = blas.Trans
				}
				run(b, false, func() { impl.Sgemm(ta, tb, s.m, s.n, s.k, 1, o.a, o.lda, o.b, o.ldb, 0, o.c, o.ldc) })
			})
		})
	}
}

// BenchmarkKernels compares the kernels this CPU can run on square-512, on
// one goroutine.
func BenchmarkKernels(b *testing.B) {
	const n = 512
	rng := rand.New(rand.NewPCG(2, 2))
	o := newOperands(rng, false, false, n, n, n, 0)
	for _, kern := range kernels() {
		b.Run(kern.name, func(b *testing.B) {
			useKernel(b, kern)
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			f := func() { Gemm(false, false, n, n, n, 1, o.a, o.lda, o.b, o.ldb, 0, o.c, o.ldc) }
			f()
			t0, ok := cpuTime(true)
			for b.Loop() {
				f()
			}
			t1, _ := cpuTime(true)
			flops := 2 * float64(n*n*n) * float64(b.N)
			b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			if ok {
				b.ReportMetric(flops/(t1-t0).Seconds()/1e9, "cpuGFLOP/s")
			}
		})
	}
}

// BenchmarkGemmImage reports GFLOP/s of Gemm (one goroutine) on the
// per-image shapes, for each kernel this CPU can run.
func BenchmarkGemmImage(b *testing.B) {
	for _, kern := range kernels() {
		b.Run(kern.name, func(b *testing.B) {
			for _, s := range imageShapes {
				b.Run(s.name, func(b *testing.B) {
					useKernel(b, kern)
					rng := rand.New(rand.NewPCG(1, 1))
					o := newOperands(rng, s.transA, s.transB, s.m, s.n, s.k, 0)
					runtime.LockOSThread()
					defer runtime.UnlockOSThread()
					f := func() { Gemm(s.transA, s.transB, s.m, s.n, s.k, 1, o.a, o.lda, o.b, o.ldb, 0, o.c, o.ldc) }
					f()
					t0, ok := cpuTime(true)
					for b.Loop() {
						f()
					}
					t1, _ := cpuTime(true)
					flops := 2 * float64(s.m) * float64(s.n) * float64(s.k) * float64(b.N)
					b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
					if ok {
						b.ReportMetric(flops/(t1-t0).Seconds()/1e9, "cpuGFLOP/s")
					}
				})
			}
		})
	}
}
