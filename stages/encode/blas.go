package encode

// sgemm computes c = alpha·op(a)·op(b) + beta·c for row-major matrices,
// op(a) m×k and op(b) k×n, as BLAS's SGEMM. Every op of this package
// multiplies matrices through it, so that one place chooses the kernel:
// gemmKernel, which the build picks (blas_go.go, or blas_openblas.go under
// the openblas build tag).
func sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	gemmKernel(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}
