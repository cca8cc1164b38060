package sgemm

import "unsafe"

// kernelFunc is a micro-kernel: with a packed k×mr (mr floats per step of
// k) and b packed k×nr (nr floats per step), it sets the mr×nr tile at c
// (row stride ldc) to alpha·(a·b) when accum == 0 — c is then not read —
// and to beta·c + alpha·(a·b) otherwise. k ≥ 1. Every element is the sum
// over k in increasing order, one fused or unfused multiply-add per step
// depending on the kernel, never depending on where the tile lies.
type kernelFunc func(k int, a, b, c *float32, ldc int, alpha, beta float32, accum int)

// kernel is a micro-kernel with its tile and the cache-block sizes that
// suit it.
type kernel struct {
	name   string
	mr, nr int // tile of c held in registers
	kc     int // most steps of k per packed block (L1/L2)
	mc     int // most rows of a per packed block, a multiple of mr
	nc     int // most columns of b per packed block (L2), a multiple of nr
	fn     kernelFunc

	// w is the width of the kernels' vectors: an edge panel of b with
	// cols < nr columns is packed roundUp(cols, w) wide. w divides nr.
	w int
	// edge, if not nil, holds the kernels for the edge tiles: edge[r-1][v-1]
	// computes an r×v·w tile (r ≤ mr, v·w ≤ nr) from the same packed
	// panels, each element by the same operations as fn, so that an edge
	// costs work in proportion to its size. Without it, edge tiles run fn
	// on a full tile copied out and back.
	edge [][]kernelFunc

	// transpose8, if not nil, is packRows8's fast path: it transposes 8
	// rows of n floats (n a multiple of 8) at src, stride lds, into n rows
	// of 8 floats at dst, stride ldd. Bounds are the caller's to check.
	transpose8 func(n int, src *float32, lds int, dst *float32, ldd int)
	// gather8, if not nil, is packA's fast path for a transposed and mr =
	// 8: it copies n rows of 8 floats at src, stride lds, to dst, packed.
	gather8 func(n int, src *float32, lds int, dst *float32)
}

// generic is the pure-Go kernel: the only one on other architectures and
// on amd64 CPUs without AVX2 and FMA.
var generic = kernel{name: "go4x4", mr: 4, nr: 4, w: 4, kc: 256, mc: 256, nc: 512, fn: kernGo4x4}

// panelWidth returns the width of b's packed micro-panel that holds cols ≤
// nr columns, roundUp(cols, w): nr for a full one.
func (kern *kernel) panelWidth(cols int) int { return roundUp(cols, kern.w) }

// active is the kernel Gemm uses. It is chosen once, at init, from the
// CPU's features; tests replace it to check the others.
var active = best()

// kernGo4x4 is the pure-Go micro-kernel, a 4×4 tile of c in 16 locals.
func kernGo4x4(k int, a, b, c *float32, ldc int, alpha, beta float32, accum int) {
	ap := unsafe.Slice(a, 4*k)
	bp := unsafe.Slice(b, 4*k)
	var c00, c01, c02, c03, c10, c11, c12, c13 float32
	var c20, c21, c22, c23, c30, c31, c32, c33 float32
	for len(ap) >= 4 && len(bp) >= 4 {
		a0, a1, a2, a3 := ap[0], ap[1], ap[2], ap[3]
		b0, b1, b2, b3 := bp[0], bp[1], bp[2], bp[3]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
		ap, bp = ap[4:], bp[4:]
	}
	cp := unsafe.Slice(c, 3*ldc+4)
	store4(cp[0:4:4], c00, c01, c02, c03, alpha, beta, accum)
	store4(cp[ldc:ldc+4:ldc+4], c10, c11, c12, c13, alpha, beta, accum)
	store4(cp[2*ldc:2*ldc+4:2*ldc+4], c20, c21, c22, c23, alpha, beta, accum)
	store4(cp[3*ldc:3*ldc+4:3*ldc+4], c30, c31, c32, c33, alpha, beta, accum)
}

func store4(c []float32, x0, x1, x2, x3, alpha, beta float32, accum int) {
	// The explicit float32 conversions round each product, so that no
	// compiler fuses them into the following addition.
	x0, x1, x2, x3 = float32(alpha*x0), float32(alpha*x1), float32(alpha*x2), float32(alpha*x3)
	if accum != 0 {
		x0 += float32(beta * c[0])
		x1 += float32(beta * c[1])
		x2 += float32(beta * c[2])
		x3 += float32(beta * c[3])
	}
	c[0], c[1], c[2], c[3] = x0, x1, x2, x3
}
