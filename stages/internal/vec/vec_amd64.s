//go:build amd64 && !purego

#include "textflag.h"

// The AVX-512 loops of vec.go. Registers Z0-Z3 (and Z4-Z7) hold a
// reduction's four float32 accumulators (value i of a block goes to
// accumulator i/16 mod 4, lane i mod 16), Z12-Z15 its float64 lanes.
// Tails are loaded with zeroing masks, so that the missing lanes add +0.
// No FMA: every product is rounded, as in the Go code.

// TAILMASK4 sets K1-K4 to the lanes of the first r (in CX, 0 ≤ r < 64) of
// four vectors. Clobbers AX.
#define TAILMASK4 \
	MOVQ $1, AX; SHLQ CX, AX; DECQ AX; \
	KMOVW AX, K1; SHRQ $16, AX; KMOVW AX, K2; SHRQ $16, AX; \
	KMOVW AX, K3; SHRQ $16, AX; KMOVW AX, K4

// TAILMASK1 sets K1 to the first r (in CX, 0 ≤ r < 16) lanes. Clobbers AX.
#define TAILMASK1 MOVQ $1, AX; SHLQ CX, AX; DECQ AX; KMOVW AX, K1

// REDUCE adds the float64 lanes lo, hi into X0 as reduce16 does: h = lo+hi,
// g[i] = h[i]+h[i+4], (g0+g2) + (g1+g3). Clobbers X1.
#define REDUCE(lo, hi, loY) \
	VADDPD hi, lo, lo; VEXTRACTF64X4 $1, lo, Y1; VADDPD Y1, loY, Y0; \
	VEXTRACTF128 $1, Y0, X1; VADDPD X1, X0, X0; \
	VPERMILPD $1, X0, X1; VADDSD X1, X0, X0

// func sumAVX512(x *float32, n int) float64
TEXT ·sumAVX512(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), R8
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15
sumblock:
	TESTQ R8, R8
	JLE sumdone
	MOVQ $1024, DX
	CMPQ R8, DX
	CMOVQLT R8, DX
	SUBQ DX, R8
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	MOVQ DX, BX
	SHRQ $6, BX
	JZ sumpart
sumloop:
	VADDPS 0(SI), Z0, Z0
	VADDPS 64(SI), Z1, Z1
	VADDPS 128(SI), Z2, Z2
	VADDPS 192(SI), Z3, Z3
	ADDQ $256, SI
	DECQ BX
	JNZ sumloop
sumpart:
	MOVQ DX, CX
	ANDQ $63, CX
	JZ sumfold
	TAILMASK4
	VMOVUPS.Z 0(SI), K1, Z4
	VADDPS Z4, Z0, Z0
	VMOVUPS.Z 64(SI), K2, Z5
	VADDPS Z5, Z1, Z1
	VMOVUPS.Z 128(SI), K3, Z6
	VADDPS Z6, Z2, Z2
	VMOVUPS.Z 192(SI), K4, Z7
	VADDPS Z7, Z3, Z3
	LEAQ (SI)(CX*4), SI
sumfold:
	VADDPS Z1, Z0, Z0
	VADDPS Z3, Z2, Z2
	VADDPS Z2, Z0, Z0
	VCVTPS2PD Y0, Z8
	VADDPD Z8, Z14, Z14
	VEXTRACTF64X4 $1, Z0, Y9
	VCVTPS2PD Y9, Z9
	VADDPD Z9, Z15, Z15
	JMP sumblock
sumdone:
	REDUCE(Z14, Z15, Y14)
	MOVSD X0, ret+16(FP)
	VZEROUPPER
	RET

// SQDEV adds the squares of (x−m) of the vector in z (m in Z31) to acc.
#define SQDEV(z, acc) VSUBPS Z31, z, z; VMULPS z, z, z; VADDPS z, acc, acc

// func sumSqDevAVX512(x *float32, n int, m float32) float64
TEXT ·sumSqDevAVX512(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), R8
	VBROADCASTSS m+16(FP), Z31
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15
sqblock:
	TESTQ R8, R8
	JLE sqdone
	MOVQ $1024, DX
	CMPQ R8, DX
	CMOVQLT R8, DX
	SUBQ DX, R8
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	MOVQ DX, BX
	SHRQ $6, BX
	JZ sqpart
sqloop:
	VMOVUPS 0(SI), Z4
	VMOVUPS 64(SI), Z5
	VMOVUPS 128(SI), Z6
	VMOVUPS 192(SI), Z7
	SQDEV(Z4, Z0)
	SQDEV(Z5, Z1)
	SQDEV(Z6, Z2)
	SQDEV(Z7, Z3)
	ADDQ $256, SI
	DECQ BX
	JNZ sqloop
sqpart:
	MOVQ DX, CX
	ANDQ $63, CX
	JZ sqfold
	TAILMASK4
	VMOVUPS.Z 0(SI), K1, Z4
	VSUBPS.Z Z31, Z4, K1, Z4
	VMULPS Z4, Z4, Z4
	VADDPS Z4, Z0, Z0
	VMOVUPS.Z 64(SI), K2, Z5
	VSUBPS.Z Z31, Z5, K2, Z5
	VMULPS Z5, Z5, Z5
	VADDPS Z5, Z1, Z1
	VMOVUPS.Z 128(SI), K3, Z6
	VSUBPS.Z Z31, Z6, K3, Z6
	VMULPS Z6, Z6, Z6
	VADDPS Z6, Z2, Z2
	VMOVUPS.Z 192(SI), K4, Z7
	VSUBPS.Z Z31, Z7, K4, Z7
	VMULPS Z7, Z7, Z7
	VADDPS Z7, Z3, Z3
	LEAQ (SI)(CX*4), SI
sqfold:
	VADDPS Z1, Z0, Z0
	VADDPS Z3, Z2, Z2
	VADDPS Z2, Z0, Z0
	VCVTPS2PD Y0, Z8
	VADDPD Z8, Z14, Z14
	VEXTRACTF64X4 $1, Z0, Y9
	VCVTPS2PD Y9, Z9
	VADDPD Z9, Z15, Z15
	JMP sqblock
sqdone:
	REDUCE(Z14, Z15, Y14)
	MOVSD X0, ret+24(FP)
	VZEROUPPER
	RET

// DOT adds g·(x−m) to dacc and g to sacc for g in zg and x in zx (m in
// Z31). Clobbers zx.
#define DOT(zg, zx, dacc, sacc) \
	VSUBPS Z31, zx, zx; VMULPS zx, zg, zx; VADDPS zx, dacc, dacc; VADDPS zg, sacc, sacc

// DOTLOAD loads g (masked by y > 0 when relu, in R9) and x at off.
#define DOTLOAD(off, zg, zx) \
	VMOVUPS off(DI), zg; \
	TESTQ R9, R9; JZ 3(PC); \
	VCMPPS $0x11, off(BX), Z30, K5; VMOVAPS.Z zg, K5, zg; \
	VMOVUPS off(SI), zx

// DOTTAIL loads the lanes k of g (masked by y > 0 when relu) and x at
// off, x−m zeroed outside them, and adds as DOT.
#define DOTTAIL(off, k, zg, zx, dacc, sacc) \
	VMOVUPS.Z off(DI), k, zg; \
	TESTQ R9, R9; JZ 4(PC); \
	VMOVUPS.Z off(BX), k, Z29; VCMPPS $0x11, Z29, Z30, K5; VMOVAPS.Z zg, K5, zg; \
	VMOVUPS.Z off(SI), k, zx; VSUBPS.Z Z31, zx, k, zx; \
	VMULPS zx, zg, zx; VADDPS zx, dacc, dacc; VADDPS zg, sacc, sacc

// func dotDevAVX512(y, gg, x *float32, n int, m float32, relu int) (dot, sum float64)
TEXT ·dotDevAVX512(SB), NOSPLIT, $0-64
	MOVQ y+0(FP), BX
	MOVQ gg+8(FP), DI
	MOVQ x+16(FP), SI
	MOVQ n+24(FP), R8
	VBROADCASTSS m+32(FP), Z31
	MOVQ relu+40(FP), R9
	VPXORD Z30, Z30, Z30
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15
dotblock:
	TESTQ R8, R8
	JLE dotdone
	MOVQ $1024, DX
	CMPQ R8, DX
	CMOVQLT R8, DX
	SUBQ DX, R8
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	MOVQ DX, R10
	SHRQ $6, R10
	JZ dotpart
dotloop:
	DOTLOAD(0, Z16, Z20)
	DOTLOAD(64, Z17, Z21)
	DOTLOAD(128, Z18, Z22)
	DOTLOAD(192, Z19, Z23)
	DOT(Z16, Z20, Z0, Z4)
	DOT(Z17, Z21, Z1, Z5)
	DOT(Z18, Z22, Z2, Z6)
	DOT(Z19, Z23, Z3, Z7)
	ADDQ $256, DI
	ADDQ $256, SI
	ADDQ $256, BX
	DECQ R10
	JNZ dotloop
dotpart:
	MOVQ DX, CX
	ANDQ $63, CX
	JZ dotfold
	TAILMASK4
	DOTTAIL(0, K1, Z16, Z20, Z0, Z4)
	DOTTAIL(64, K2, Z17, Z21, Z1, Z5)
	DOTTAIL(128, K3, Z18, Z22, Z2, Z6)
	DOTTAIL(192, K4, Z19, Z23, Z3, Z7)
	LEAQ (DI)(CX*4), DI
	LEAQ (SI)(CX*4), SI
	LEAQ (BX)(CX*4), BX
dotfold:
	VADDPS Z1, Z0, Z0
	VADDPS Z3, Z2, Z2
	VADDPS Z2, Z0, Z0
	VCVTPS2PD Y0, Z8
	VADDPD Z8, Z14, Z14
	VEXTRACTF64X4 $1, Z0, Y9
	VCVTPS2PD Y9, Z9
	VADDPD Z9, Z15, Z15
	VADDPS Z5, Z4, Z4
	VADDPS Z7, Z6, Z6
	VADDPS Z6, Z4, Z4
	VCVTPS2PD Y4, Z8
	VADDPD Z8, Z12, Z12
	VEXTRACTF64X4 $1, Z4, Y9
	VCVTPS2PD Y9, Z9
	VADDPD Z9, Z13, Z13
	JMP dotblock
dotdone:
	REDUCE(Z14, Z15, Y14)
	MOVSD X0, dot+48(FP)
	REDUCE(Z12, Z13, Y12)
	MOVSD X0, sum+56(FP)
	VZEROUPPER
	RET

// func scaleShiftAVX512(y, x *float32, n int, a, b float32, relu int)
TEXT ·scaleShiftAVX512(SB), NOSPLIT, $0-40
	MOVQ y+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS a+24(FP), Z30
	VBROADCASTSS b+28(FP), Z31
	VPXORD Z29, Z29, Z29
	MOVQ relu+32(FP), DX
	TESTQ DX, DX
	JNZ ssrelu
ssloop:
	CMPQ CX, $16
	JLT sstail
	VMULPS 0(SI), Z30, Z0
	VADDPS Z31, Z0, Z0
	VMOVUPS Z0, 0(DI)
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP ssloop
sstail:
	TESTQ CX, CX
	JZ ssdone
	TAILMASK1
	VMOVUPS.Z 0(SI), K1, Z0
	VMULPS Z30, Z0, Z0
	VADDPS Z31, Z0, Z0
	VMOVUPS Z0, K1, 0(DI)
ssdone:
	VZEROUPPER
	RET
ssrelu:
	// r = t > 0 ? t : +0 (VMAXPS returns its second source, 0, for NaN
	// and ±0), then r = t where t is NaN.
	CMPQ CX, $16
	JLT ssrtail
	VMULPS 0(SI), Z30, Z0
	VADDPS Z31, Z0, Z0
	VMAXPS Z29, Z0, Z1
	VCMPPS $3, Z0, Z0, K2
	VMOVAPS Z0, K2, Z1
	VMOVUPS Z1, 0(DI)
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP ssrelu
ssrtail:
	TESTQ CX, CX
	JZ ssdone
	TAILMASK1
	VMOVUPS.Z 0(SI), K1, Z0
	VMULPS Z30, Z0, Z0
	VADDPS Z31, Z0, Z0
	VMAXPS Z29, Z0, Z1
	VCMPPS $3, Z0, Z0, K2
	VMOVAPS Z0, K2, Z1
	VMOVUPS Z1, K1, 0(DI)
	VZEROUPPER
	RET

// func reluMaskAVX512(m, y, dy *float32, n int)
TEXT ·reluMaskAVX512(SB), NOSPLIT, $0-32
	MOVQ m+0(FP), DI
	MOVQ y+8(FP), BX
	MOVQ dy+16(FP), SI
	MOVQ n+24(FP), CX
	VPXORD Z30, Z30, Z30
rmloop:
	CMPQ CX, $16
	JLT rmtail
	VCMPPS $0x11, 0(BX), Z30, K2
	VMOVUPS.Z 0(SI), K2, Z0
	VMOVUPS Z0, 0(DI)
	ADDQ $64, BX
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP rmloop
rmtail:
	TESTQ CX, CX
	JZ rmdone
	TAILMASK1
	VMOVUPS.Z 0(BX), K1, Z1
	VCMPPS $0x11, Z1, Z30, K2
	VMOVUPS.Z 0(SI), K2, Z0
	VMOVUPS Z0, K1, 0(DI)
rmdone:
	VZEROUPPER
	RET

// BNGI computes dx for g in zg and x in zx: a·((g−mb) − (x−m)·k), with a,
// mb, m, k in Z28-Z31. Result in zg; clobbers zx.
#define BNGI(zg, zx) \
	VSUBPS Z29, zg, zg; VSUBPS Z30, zx, zx; VMULPS Z31, zx, zx; \
	VSUBPS zx, zg, zg; VMULPS Z28, zg, zg

// func bnGradInputAVX512(dx, y, gg, x *float32, n int, a, mb, m, k float32, relu int)
TEXT ·bnGradInputAVX512(SB), NOSPLIT, $0-64
	MOVQ dx+0(FP), DI
	MOVQ y+8(FP), BX
	MOVQ gg+16(FP), DX
	MOVQ x+24(FP), SI
	MOVQ n+32(FP), CX
	VBROADCASTSS a+40(FP), Z28
	VBROADCASTSS mb+44(FP), Z29
	VBROADCASTSS m+48(FP), Z30
	VBROADCASTSS k+52(FP), Z31
	VPXORD Z27, Z27, Z27
	MOVQ relu+56(FP), R9
	TESTQ R9, R9
	JNZ bgrelu
bgloop:
	CMPQ CX, $16
	JLT bgtail
	VMOVUPS 0(DX), Z0
	VMOVUPS 0(SI), Z1
	BNGI(Z0, Z1)
	VMOVUPS Z0, 0(DI)
	ADDQ $64, DX
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP bgloop
bgtail:
	TESTQ CX, CX
	JZ bgdone
	TAILMASK1
	VMOVUPS.Z 0(DX), K1, Z0
	VMOVUPS.Z 0(SI), K1, Z1
	BNGI(Z0, Z1)
	VMOVUPS Z0, K1, 0(DI)
bgdone:
	VZEROUPPER
	RET
bgrelu:
	CMPQ CX, $16
	JLT bgrtail
	VCMPPS $0x11, 0(BX), Z27, K2
	VMOVUPS.Z 0(DX), K2, Z0
	VMOVUPS 0(SI), Z1
	BNGI(Z0, Z1)
	VMOVUPS Z0, 0(DI)
	ADDQ $64, BX
	ADDQ $64, DX
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP bgrelu
bgrtail:
	TESTQ CX, CX
	JZ bgdone
	TAILMASK1
	VMOVUPS.Z 0(BX), K1, Z2
	VCMPPS $0x11, Z2, Z27, K2
	VMOVUPS.Z 0(DX), K2, Z0
	VMOVUPS.Z 0(SI), K1, Z1
	BNGI(Z0, Z1)
	VMOVUPS Z0, K1, 0(DI)
	VZEROUPPER
	RET

// func addAVX512(dst, src *float32, n int)
TEXT ·addAVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
addloop:
	CMPQ CX, $16
	JLT addtail
	VMOVUPS 0(DI), Z0
	VADDPS 0(SI), Z0, Z0
	VMOVUPS Z0, 0(DI)
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP addloop
addtail:
	TESTQ CX, CX
	JZ adddone
	TAILMASK1
	VMOVUPS.Z 0(DI), K1, Z0
	VMOVUPS.Z 0(SI), K1, Z1
	VADDPS Z1, Z0, Z0
	VMOVUPS Z0, K1, 0(DI)
adddone:
	VZEROUPPER
	RET
