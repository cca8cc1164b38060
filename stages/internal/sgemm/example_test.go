package sgemm_test

import (
	"fmt"

	"github.com/contrastream/contrastream/stages/internal/sgemm"
)

func ExampleGemm() {
	// c = a·bᵀ, a 2×3, b 2×3 (so bᵀ is 3×2), c 2×2.
	a := []float32{
		1, 2, 3,
		4, 5, 6,
	}
	b := []float32{
		1, 0, 1,
		0, 1, 0,
	}
	c := make([]float32, 4)
	sgemm.Gemm(false, true, 2, 2, 3, 1, a, 3, b, 3, 0, c, 2)
	fmt.Println(c)
	// Output: [4 2 10 5]
}

func ExampleGemmParallel() {
	// c = 2·a·b + c with a 2×2 and b 2×3, on up to 4 goroutines.
	a := []float32{1, 2, 3, 4}
	b := []float32{1, 0, 1, 0, 1, 1}
	c := []float32{1, 1, 1, 1, 1, 1}
	sgemm.GemmParallel(4, false, false, 2, 3, 2, 2, a, 2, b, 3, 1, c, 3)
	fmt.Println(c)
	// Output: [3 5 7 7 9 15]
}
