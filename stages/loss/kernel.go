package loss

import "math"

// normEps is the smallest norm a row is divided by, as in PyTorch's
// F.normalize: x̂ = x / max(‖x‖, normEps).
const normEps = 1e-12

// normalize writes the rows of x (m×d) divided by max(‖row‖, normEps) into
// xh and each row's norm into nrm.
func normalize(xh, nrm, x []float64, m, d int) {
	for a := range m {
		row := x[a*d : (a+1)*d]
		n := math.Sqrt(dot(row, row))
		nrm[a] = n
		inv := 1 / max(n, normEps)
		out := xh[a*d : (a+1)*d]
		for k, v := range row {
			out[k] = v * inv
		}
	}
}

// normalizeBackward turns g = dL/dx̂ (m×d), times scale, into dL/dx,
// written to gx, for x̂ = x / max(‖x‖, normEps): (g − x̂ (x̂·g)) / ‖x‖, or
// g / normEps where the norm was clamped (the clamp has no gradient, as in
// PyTorch).
func normalizeBackward(gx, g, xh, nrm []float64, m, d int, scale float64) {
	for a := range m {
		ga := g[a*d : (a+1)*d]
		out := gx[a*d : (a+1)*d]
		if nrm[a] <= normEps {
			for k, v := range ga {
				out[k] = v * scale / normEps
			}
			continue
		}
		xa := xh[a*d : (a+1)*d]
		c := dot(xa, ga)
		inv := scale / nrm[a]
		for k, v := range ga {
			out[k] = (v - c*xa[k]) * inv
		}
	}
}

// transpose writes the m×n matrix a into t as n×m.
func transpose(t, a []float64, m, n int) { transposeRows(t, a, m, n, 0, n) }

// transposeRows writes rows [lo, hi) of t, the n×m transpose of the m×n
// matrix a. It fills eight rows of t at a time: with m a power of two the
// rows of t are a multiple of 4 KiB apart, so they share cache sets, and
// wider blocks were four times slower.
func transposeRows(t, a []float64, m, n, lo, hi int) {
	const blk = 8
	for j0 := lo; j0 < hi; j0 += blk {
		j1 := min(j0+blk, hi)
		for i := range m {
			for j, v := range a[i*n+j0 : i*n+j1] {
				t[(j0+j)*m+i] = v
			}
		}
	}
}

// gemmT computes C = A·Bᵀ for A m×kd (row stride lda), B n×kd (row stride
// ldb), C m×n (row stride ldc). Rows of A are taken four at a time, so that
// each row of B is loaded once for four dot products.
func gemmT(c []float64, ldc int, a []float64, lda, m int, b []float64, ldb, n, kd int) {
	i := 0
	for ; i+4 <= m; i += 4 {
		a0 := a[i*lda : i*lda+kd]
		a1 := a[(i+1)*lda : (i+1)*lda+kd]
		a2 := a[(i+2)*lda : (i+2)*lda+kd]
		a3 := a[(i+3)*lda : (i+3)*lda+kd]
		c0 := c[i*ldc : i*ldc+n]
		c1 := c[(i+1)*ldc : (i+1)*ldc+n]
		c2 := c[(i+2)*ldc : (i+2)*ldc+n]
		c3 := c[(i+3)*ldc : (i+3)*ldc+n]
		for j := range n {
			c0[j], c1[j], c2[j], c3[j] = dot4(a0, a1, a2, a3, b[j*ldb:j*ldb+kd])
		}
	}
	for ; i < m; i++ {
		ai := a[i*lda : i*lda+kd]
		ci := c[i*ldc : i*ldc+n]
		for j := range n {
			ci[j] = dot(ai, b[j*ldb:j*ldb+kd])
		}
	}
}

// dot returns Σ a[k]·b[k] over len(a), with four partial sums.
func dot(a, b []float64) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	k := 0
	for ; k+4 <= len(a); k += 4 {
		s0 += a[k] * b[k]
		s1 += a[k+1] * b[k+1]
		s2 += a[k+2] * b[k+2]
		s3 += a[k+3] * b[k+3]
	}
	for ; k < len(a); k++ {
		s0 += a[k] * b[k]
	}
	return (s0 + s1) + (s2 + s3)
}

// dot4 returns the dot products of u with a0…a3 (all of len(a0)).
func dot4(a0, a1, a2, a3, u []float64) (s0, s1, s2, s3 float64) {
	u = u[:len(a0)]
	a1, a2, a3 = a1[:len(u)], a2[:len(u)], a3[:len(u)]
	for k, x := range u {
		s0 += a0[k] * x
		s1 += a1[k] * x
		s2 += a2[k] * x
		s3 += a3[k] * x
	}
	return
}

// toFloat64 widens src into dst[:len(src)].
func toFloat64(dst []float64, src []float32) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = float64(v)
	}
}

// toFloat32 narrows src into dst[:len(src)].
func toFloat32(dst []float32, src []float64) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = float32(v)
	}
}

// grow returns buf resliced to n values, reallocated only when its
// capacity is short. The values are not cleared.
func grow[T any](buf []T, n int) []T {
	if cap(buf) < n {
		return make([]T, n)
	}
	return buf[:n]
}
