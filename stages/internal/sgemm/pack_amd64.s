//go:build amd64 && !purego

#include "textflag.h"

// func transpose8(n int, src *float32, lds int, dst *float32, ldd int)
//
// Transposes 8 rows of n floats (n a multiple of 8), row r at src+r·lds,
// into n rows of 8 floats, row p at dst+p·ldd, by blocks of 8×8 in ymm
// registers (AVX).
TEXT ·transpose8(SB), NOSPLIT, $0-40
	MOVQ n+0(FP), CX
	MOVQ src+8(FP), SI
	MOVQ lds+16(FP), AX
	MOVQ dst+24(FP), DI
	MOVQ ldd+32(FP), DX
	SHLQ $2, AX
	SHLQ $2, DX
	SHRQ $3, CX
	JZ   done
	LEAQ (AX)(AX*2), BX // 3·lds
	LEAQ (SI)(AX*4), R8 // row 4
	LEAQ (DX)(DX*2), R9 // 3·ldd

loop:
	VMOVUPS (SI), Y0
	VMOVUPS (SI)(AX*1), Y1
	VMOVUPS (SI)(AX*2), Y2
	VMOVUPS (SI)(BX*1), Y3
	VMOVUPS (R8), Y4
	VMOVUPS (R8)(AX*1), Y5
	VMOVUPS (R8)(AX*2), Y6
	VMOVUPS (R8)(BX*1), Y7

	// Pairs of rows interleaved: a0 b0 a1 b1 | a4 b4 a5 b5, ...
	VUNPCKLPS Y1, Y0, Y8
	VUNPCKHPS Y1, Y0, Y9
	VUNPCKLPS Y3, Y2, Y10
	VUNPCKHPS Y3, Y2, Y11
	VUNPCKLPS Y5, Y4, Y12
	VUNPCKHPS Y5, Y4, Y13
	VUNPCKLPS Y7, Y6, Y14
	VUNPCKHPS Y7, Y6, Y15

	// Quads: a0 b0 c0 d0 | a4 b4 c4 d4, ...
	VSHUFPS $0x44, Y10, Y8, Y0
	VSHUFPS $0xEE, Y10, Y8, Y1
	VSHUFPS $0x44, Y11, Y9, Y2
	VSHUFPS $0xEE, Y11, Y9, Y3
	VSHUFPS $0x44, Y14, Y12, Y4
	VSHUFPS $0xEE, Y14, Y12, Y5
	VSHUFPS $0x44, Y15, Y13, Y6
	VSHUFPS $0xEE, Y15, Y13, Y7

	// Columns: the low halves make columns 0-3, the high ones 4-7.
	VPERM2F128 $0x20, Y4, Y0, Y8
	VPERM2F128 $0x20, Y5, Y1, Y9
	VPERM2F128 $0x20, Y6, Y2, Y10
	VPERM2F128 $0x20, Y7, Y3, Y11
	VPERM2F128 $0x31, Y4, Y0, Y12
	VPERM2F128 $0x31, Y5, Y1, Y13
	VPERM2F128 $0x31, Y6, Y2, Y14
	VPERM2F128 $0x31, Y7, Y3, Y15

	LEAQ    (DI)(DX*4), R10
	VMOVUPS Y8, (DI)
	VMOVUPS Y9, (DI)(DX*1)
	VMOVUPS Y10, (DI)(DX*2)
	VMOVUPS Y11, (DI)(R9*1)
	VMOVUPS Y12, (R10)
	VMOVUPS Y13, (R10)(DX*1)
	VMOVUPS Y14, (R10)(DX*2)
	VMOVUPS Y15, (R10)(R9*1)

	ADDQ $32, SI
	ADDQ $32, R8
	LEAQ (DI)(DX*8), DI
	DECQ CX
	JNZ  loop

done:
	VZEROUPPER
	RET

// func gather8(n int, src *float32, lds int, dst *float32)
//
// Copies n rows of 8 floats, row p at src+p·lds, to dst+8p, contiguous
// (AVX).
TEXT ·gather8(SB), NOSPLIT, $0-32
	MOVQ  n+0(FP), CX
	MOVQ  src+8(FP), SI
	MOVQ  lds+16(FP), AX
	MOVQ  dst+24(FP), DI
	SHLQ  $2, AX
	TESTQ CX, CX
	JZ    gdone

gloop:
	VMOVUPS (SI), Y0
	VMOVUPS Y0, (DI)
	ADDQ    AX, SI
	ADDQ    $32, DI
	DECQ    CX
	JNZ     gloop

gdone:
	VZEROUPPER
	RET
