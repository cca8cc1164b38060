//go:build !openblas

package encode

import (
	kernel "github.com/contrastream/contrastream/stages/internal/sgemm"
)

// BLAS names the matrix-multiply kernel this process uses: the project's own
// (stages/internal/sgemm: AVX-512 or AVX2 assembly, or Go).
var BLAS = "sgemm " + kernel.Kernel()

func gemmKernel(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	kernel.Gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}
