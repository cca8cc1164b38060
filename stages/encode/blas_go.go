//go:build !openblas

package encode

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// BLAS names the matrix-multiply kernel this build uses.
const BLAS = "gonum"

// rowMin is the smallest C·K·K for which a convolution's forward pass
// multiplies by the im2row matrix (dot products of length C·K·K) rather
// than the im2col one (AXPYs of length OH·OW): with gonum's SGEMM on 2
// cores the first ran at 22 GFLOP/s for convnet-s's 2nd and 3rd layers
// against 15 and 6.5, the second 6.5 against 3.3 for the 1st (C·K·K = 9).
const rowMin = 32

func gemmKernel(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	gonum.Implementation{}.Sgemm(trans(transA), trans(transB), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

func trans(t bool) blas.Transpose {
	if t {
		return blas.Trans
	}
	return blas.NoTrans
}
