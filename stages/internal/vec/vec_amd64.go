//go:build amd64 && !purego

package vec

import "golang.org/x/sys/cpu"

// hasAVX512 is whether this CPU (and its operating system) runs the
// assembly: AVX-512F with the 256-bit forms of AVX-512VL.
var hasAVX512 = cpu.X86.HasAVX512F && cpu.X86.HasAVX512VL

// useAVX512 selects the assembly; the tests turn it off to run the Go code.
var useAVX512 = hasAVX512

// The AVX-512 functions (vec_amd64.s). n ≥ 1; the callers check the
// lengths. relu ≠ 0 masks g by y > 0 (y is not read otherwise).

//go:noescape
func sumAVX512(x *float32, n int) float64

//go:noescape
func sumSqDevAVX512(x *float32, n int, m float32) float64

//go:noescape
func dotDevAVX512(y, gg, x *float32, n int, m float32, relu int) (dot, sum float64)

//go:noescape
func scaleShiftAVX512(y, x *float32, n int, a, b float32, relu int)

//go:noescape
func reluMaskAVX512(m, y, dy *float32, n int)

//go:noescape
func bnGradInputAVX512(dx, y, gg, x *float32, n int, a, mb, m, k float32, relu int)

//go:noescape
func addAVX512(dst, src *float32, n int)

// maxPool2AVX512 is MaxPool2 for planes ≥ 1 planes of ⌊h/2⌋, ⌊w/2⌋ ≥ 1.
//
//go:noescape
func maxPool2AVX512(y *float32, idx *int32, x *float32, planes, h, w, base int)

// maxPool2GradAVX512 is MaxPool2Grad's loop over the windows, for planes
// ≥ 1 planes of ⌊h/2⌋, ⌊w/2⌋ ≥ 1; it leaves an odd side's last row or
// column alone.
//
//go:noescape
func maxPool2GradAVX512(dx, dy *float32, idx *int32, planes, h, w, base int)
