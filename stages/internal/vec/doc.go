// Package vec holds the elementwise loops and reductions of the encoder's
// BatchNorm, ReLU and max-pool ops on float32 slices, in pure Go and in
// AVX-512 assembly.
//
// # Kernels
//
// One implementation is chosen at start-up: AVX-512 (amd64 with AVX-512F
// and VL, unless built with the purego tag) or Go. Kernel reports which.
// The Go code performs the same float32 operations in the same order as the
// assembly, without fused multiply-adds (each product is rounded, as
// float32(a*b) forces in Go), so both give the same bits: the tests compare
// them exactly, as well as against float64 references.
//
// # Sums
//
// The reductions (Sum, SumSqDev, DotDev, DotDevReLU) cut x into blocks of
// Block values. Within a block, value i is added in float32 to accumulator
// i mod 64 (four vectors of 16 lanes); at the block's end the accumulators
// are folded lane-wise, (a0+a1)+(a2+a3), into 16 float32 lanes that are
// added to 16 float64 lanes; at the end the float64 lanes are added in a
// fixed tree (see reduce16). So each float32 partial sum holds at most 16
// values, and the result depends only on the values and their order: not
// on the slice's alignment, the machine's load or anything else.
//
// # Elementwise
//
// The elementwise functions compute each value on its own with the
// operations their docs spell out, in that order and with float32
// rounding after each. ReLU follows Go's max(v, 0): NaN stays NaN and −0
// becomes +0. A ReLU mask keeps a gradient where y > 0: never for ±0, a
// negative y or NaN.
//
// # Cost
//
// Nothing allocates. Every function runs on the calling goroutine. The
// assembly functions are not preemptible; each runs for at most a few
// milliseconds on the encoder's largest tensors.
package vec
