//go:build amd64 && !purego

#include "textflag.h"

// deint<> permutes 16 floats into their even lanes then their odd ones;
// its first 8 entries, 0, 2, …, 14, are also the offsets in x of 8
// consecutive windows' first values.
DATA deint<>+0(SB)/4, $0
DATA deint<>+4(SB)/4, $2
DATA deint<>+8(SB)/4, $4
DATA deint<>+12(SB)/4, $6
DATA deint<>+16(SB)/4, $8
DATA deint<>+20(SB)/4, $10
DATA deint<>+24(SB)/4, $12
DATA deint<>+28(SB)/4, $14
DATA deint<>+32(SB)/4, $1
DATA deint<>+36(SB)/4, $3
DATA deint<>+40(SB)/4, $5
DATA deint<>+44(SB)/4, $7
DATA deint<>+48(SB)/4, $9
DATA deint<>+52(SB)/4, $11
DATA deint<>+56(SB)/4, $13
DATA deint<>+60(SB)/4, $15
GLOBL deint<>(SB), RODATA|NOPTR, $64

// dup<> repeats each of 8 lanes twice: 0, 0, 1, 1, …, 7, 7.
DATA dup<>+0(SB)/4, $0
DATA dup<>+4(SB)/4, $0
DATA dup<>+8(SB)/4, $1
DATA dup<>+12(SB)/4, $1
DATA dup<>+16(SB)/4, $2
DATA dup<>+20(SB)/4, $2
DATA dup<>+24(SB)/4, $3
DATA dup<>+28(SB)/4, $3
DATA dup<>+32(SB)/4, $4
DATA dup<>+36(SB)/4, $4
DATA dup<>+40(SB)/4, $5
DATA dup<>+44(SB)/4, $5
DATA dup<>+48(SB)/4, $6
DATA dup<>+52(SB)/4, $6
DATA dup<>+56(SB)/4, $7
DATA dup<>+60(SB)/4, $7
GLOBL dup<>(SB), RODATA|NOPTR, $64

// alt<> is 0, 1, 0, 1, …: a window's top pair's offsets.
DATA alt<>+0(SB)/4, $0
DATA alt<>+4(SB)/4, $1
DATA alt<>+8(SB)/4, $0
DATA alt<>+12(SB)/4, $1
DATA alt<>+16(SB)/4, $0
DATA alt<>+20(SB)/4, $1
DATA alt<>+24(SB)/4, $0
DATA alt<>+28(SB)/4, $1
DATA alt<>+32(SB)/4, $0
DATA alt<>+36(SB)/4, $1
DATA alt<>+40(SB)/4, $0
DATA alt<>+44(SB)/4, $1
DATA alt<>+48(SB)/4, $0
DATA alt<>+52(SB)/4, $1
DATA alt<>+56(SB)/4, $0
DATA alt<>+60(SB)/4, $1
GLOBL alt<>(SB), RODATA|NOPTR, $64

// GOMAX sets r = Go's max(a, b) for 8 floats: VMAXPS gives a if a > b,
// else b (so b when either is NaN or both are zeros); then a&b where a ==
// b (+0 over −0) and a where a is NaN.
#define GOMAX(a, b, r) \
	VMAXPS b, a, r; \
	VCMPPS $0, b, a, K4; VPANDD b, a, K4, r; \
	VCMPPS $3, a, a, K5; VMOVAPS a, K5, r

// POOL pools the 16 floats of the top row in Z0 and the bottom row in Z1
// (8 windows, the first at index AX of x): max in Y8, index in Y4.
#define POOL \
	VPERMPS Z0, Z31, Z0; VPERMPS Z1, Z31, Z1; \
	VEXTRACTF64X4 $1, Z0, Y2; VEXTRACTF64X4 $1, Z1, Y3; \
	VMOVD AX, X4; VPBROADCASTD X4, Y4; VPADDD Y30, Y4, Y4; \
	VPADDD Y28, Y4, Y5; \
	VCMPPS $0x1e, Y0, Y2, K1; VPADDD Y29, Y4, K1, Y4; \
	VCMPPS $0x1e, Y1, Y3, K2; VPADDD Y29, Y5, K2, Y5; \
	GOMAX(Y0, Y2, Y6); GOMAX(Y1, Y3, Y7); \
	VCMPPS $0x1e, Y6, Y7, K3; VMOVDQA32 Y5, K3, Y4; \
	GOMAX(Y6, Y7, Y8)

// func maxPool2AVX512(y *float32, idx *int32, x *float32, planes, h, w, base int)
TEXT ·maxPool2AVX512(SB), NOSPLIT, $0-56
	MOVQ y+0(FP), DI
	MOVQ idx+8(FP), R8
	MOVQ x+16(FP), R12
	MOVQ planes+24(FP), R9
	MOVQ w+40(FP), R11
	MOVQ base+48(FP), R13
	VMOVDQU32 deint<>(SB), Z31
	VMOVDQU32 deint<>(SB), Y30
	MOVL $1, AX
	VMOVD AX, X9
	VPBROADCASTD X9, Y29
	VMOVD R11, X9
	VPBROADCASTD X9, Y28
pplane:
	MOVQ h+32(FP), R10
	SHRQ $1, R10
prow:
	// R12 points at the top row's first value, R13 is its index.
	MOVQ R11, DX
	SHRQ $1, DX
	MOVQ R12, SI
	MOVQ R13, AX
pgroup:
	CMPQ DX, $8
	JLT ptail
	VMOVUPS 0(SI), Z0
	VMOVUPS (SI)(R11*4), Z1
	POOL
	VMOVUPS Y8, 0(DI)
	VMOVDQU32 Y4, 0(R8)
	ADDQ $64, SI
	ADDQ $16, AX
	ADDQ $32, DI
	ADDQ $32, R8
	SUBQ $8, DX
	JMP pgroup
ptail:
	TESTQ DX, DX
	JZ prowend
	MOVQ DX, CX
	MOVQ $1, BX
	SHLQ CX, BX
	DECQ BX
	KMOVW BX, K6
	ADDQ CX, CX
	MOVQ $1, BX
	SHLQ CX, BX
	DECQ BX
	KMOVW BX, K7
	VMOVUPS.Z 0(SI), K7, Z0
	VMOVUPS.Z (SI)(R11*4), K7, Z1
	POOL
	VMOVUPS Y8, K6, 0(DI)
	VMOVDQU32 Y4, K6, 0(R8)
	LEAQ (DI)(DX*4), DI
	LEAQ (R8)(DX*4), R8
prowend:
	LEAQ (R12)(R11*8), R12
	LEAQ (R13)(R11*2), R13
	DECQ R10
	JNZ prow
	// An odd last row belongs to no window.
	MOVQ h+32(FP), CX
	ANDQ $1, CX
	JZ pnext
	LEAQ (R12)(R11*4), R12
	ADDQ R11, R13
pnext:
	DECQ R9
	JNZ pplane
	VZEROUPPER
	RET

// UNPOOL writes the top (Z5) and bottom (Z6) rows of 8 windows from their
// gradients in Y0 and max indices in Y1 (the first window's at AX): each
// value is +0 + dy where it was the max, else +0.
#define UNPOOL \
	VMOVD AX, X2; VPBROADCASTD X2, Y2; VPADDD Y30, Y2, Y2; \
	VPSUBD Y2, Y1, Y1; \
	VPERMD Z0, Z31, Z3; VPERMD Z1, Z31, Z4; \
	VPCMPEQD Z27, Z4, K1; VPCMPEQD Z26, Z4, K2; \
	VMOVAPS.Z Z3, K1, Z5; VADDPS Z25, Z5, Z5; \
	VMOVAPS.Z Z3, K2, Z6; VADDPS Z25, Z6, Z6

// func maxPool2GradAVX512(dx, dy *float32, idx *int32, planes, h, w, base int)
TEXT ·maxPool2GradAVX512(SB), NOSPLIT, $0-56
	MOVQ dx+0(FP), R12
	MOVQ dy+8(FP), DI
	MOVQ idx+16(FP), R8
	MOVQ planes+24(FP), R9
	MOVQ w+40(FP), R11
	MOVQ base+48(FP), R13
	VMOVDQU32 dup<>(SB), Z31
	VMOVDQU32 deint<>(SB), Y30
	VMOVDQU32 alt<>(SB), Z27
	VMOVD R11, X9
	VPBROADCASTD X9, Z26
	VPADDD Z27, Z26, Z26
	VPXORD Z25, Z25, Z25
gplane:
	MOVQ h+32(FP), R10
	SHRQ $1, R10
grow:
	MOVQ R11, DX
	SHRQ $1, DX
	MOVQ R12, SI
	MOVQ R13, AX
ggroup:
	CMPQ DX, $8
	JLT gtail
	VMOVUPS 0(DI), Y0
	VMOVDQU32 0(R8), Y1
	UNPOOL
	VMOVUPS Z5, 0(SI)
	VMOVUPS Z6, (SI)(R11*4)
	ADDQ $64, SI
	ADDQ $16, AX
	ADDQ $32, DI
	ADDQ $32, R8
	SUBQ $8, DX
	JMP ggroup
gtail:
	TESTQ DX, DX
	JZ growend
	MOVQ DX, CX
	MOVQ $1, BX
	SHLQ CX, BX
	DECQ BX
	KMOVW BX, K6
	ADDQ CX, CX
	MOVQ $1, BX
	SHLQ CX, BX
	DECQ BX
	KMOVW BX, K7
	VMOVUPS.Z 0(DI), K6, Y0
	VMOVDQU32.Z 0(R8), K6, Y1
	UNPOOL
	VMOVUPS Z5, K7, 0(SI)
	VMOVUPS Z6, K7, (SI)(R11*4)
	LEAQ (DI)(DX*4), DI
	LEAQ (R8)(DX*4), R8
growend:
	LEAQ (R12)(R11*8), R12
	LEAQ (R13)(R11*2), R13
	DECQ R10
	JNZ grow
	MOVQ h+32(FP), CX
	ANDQ $1, CX
	JZ gnext
	LEAQ (R12)(R11*4), R12
	ADDQ R11, R13
gnext:
	DECQ R9
	JNZ gplane
	VZEROUPPER
	RET
