//go:build openblas

package encode

// #cgo LDFLAGS: -lopenblas
// #include <cblas.h>
import "C"

import "unsafe"

// BLAS names the matrix-multiply kernel this build uses.
const BLAS = "openblas"

func init() {
	// The encode pool runs its shards on as many workers as there are
	// cores; each multiplies on its own goroutine, so OpenBLAS's own
	// threads would only oversubscribe them (and one thread keeps each
	// product's rounding independent of the thread count).
	C.openblas_set_num_threads(1)
}

func gemmKernel(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	ta, tb := uint32(C.CblasNoTrans), uint32(C.CblasNoTrans)
	if transA {
		ta = C.CblasTrans
	}
	if transB {
		tb = C.CblasTrans
	}
	C.cblas_sgemm(C.CblasRowMajor, ta, tb, C.blasint(m), C.blasint(n), C.blasint(k), C.float(alpha),
		(*C.float)(unsafe.Pointer(&a[0])), C.blasint(lda), (*C.float)(unsafe.Pointer(&b[0])), C.blasint(ldb),
		C.float(beta), (*C.float)(unsafe.Pointer(&c[0])), C.blasint(ldc))
}
