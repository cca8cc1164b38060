//go:build !openblas

package encode

import (
	"math"

	kernel "github.com/contrastream/contrastream/stages/internal/sgemm"
)

// BLAS names the matrix-multiply kernel this process uses: the project's own
// (stages/internal/sgemm: AVX-512 or AVX2 assembly, or Go).
var BLAS = "sgemm " + kernel.Kernel()

// rowMin is the smallest C·K·K for which a convolution's forward pass
// multiplies by the im2row matrix rather than the im2col one: never, since
// the kernel packs either form as fast and im2col copies whole rows.
const rowMin = math.MaxInt

func gemmKernel(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	kernel.Gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}
