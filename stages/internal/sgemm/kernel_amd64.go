//go:build amd64 && !purego

package sgemm

import "golang.org/x/sys/cpu"

//go:generate go run gen_asm.go

// kernAVX512 is the AVX-512 micro-kernel, an 8×48 tile of c in 24 zmm
// registers (kernel_amd64.s).
//
//go:noescape
func kernAVX512(k int, a, b, c *float32, ldc int, alpha, beta float32, accum int)

// kernAVX2 is the AVX2+FMA micro-kernel, a 6×16 tile of c in 12 ymm
// registers (kernel_amd64.s).
//
//go:noescape
func kernAVX2(k int, a, b, c *float32, ldc int, alpha, beta float32, accum int)

// transpose8 transposes 8 rows of n floats (n a multiple of 8), row r at
// src+r·lds, into n rows of 8 floats, row p at dst+p·ldd (pack_amd64.s,
// AVX). The caller checks the bounds.
//
//go:noescape
func transpose8(n int, src *float32, lds int, dst *float32, ldd int)

var (
	avx512 = kernel{name: "avx512-8x48", mr: 8, nr: 48, kc: 384, mc: 960, nc: 672, fn: kernAVX512, transpose8: transpose8}
	avx2   = kernel{name: "avx2-6x16", mr: 6, nr: 16, kc: 384, mc: 960, nc: 1024, fn: kernAVX2, transpose8: transpose8}
)

// best returns the fastest kernel this CPU (and its operating system) can run.
func best() kernel {
	switch {
	case cpu.X86.HasAVX512F:
		return avx512
	case cpu.X86.HasAVX2 && cpu.X86.HasFMA:
		return avx2
	}
	return generic
}

// kernels lists every kernel this CPU can run, for the tests.
func kernels() []kernel {
	ks := []kernel{generic}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		ks = append(ks, avx2)
	}
	if cpu.X86.HasAVX512F {
		ks = append(ks, avx512)
	}
	return ks
}
