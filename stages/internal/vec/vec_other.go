//go:build !amd64 || purego

package vec

// useAVX512 is false: assembly exists for amd64 only.
var useAVX512 = false

// hasAVX512 is false: assembly exists for amd64 only.
const hasAVX512 = false

func sumAVX512(x *float32, n int) float64                           { panic("vec: no assembly") }
func sumSqDevAVX512(x *float32, n int, m float32) float64           { panic("vec: no assembly") }
func reluMaskAVX512(m, y, dy *float32, n int)                       { panic("vec: no assembly") }
func addAVX512(dst, src *float32, n int)                            { panic("vec: no assembly") }
func scaleShiftAVX512(y, x *float32, n int, a, b float32, relu int) { panic("vec: no assembly") }
func dotDevAVX512(y, gg, x *float32, n int, m float32, relu int) (dot, sum float64) {
	panic("vec: no assembly")
}
func bnGradInputAVX512(dx, y, gg, x *float32, n int, a, mb, m, k float32, relu int) {
	panic("vec: no assembly")
}
func maxPool2AVX512(y *float32, idx *int32, x *float32, planes, h, w, base int) {
	panic("vec: no assembly")
}
func maxPool2GradAVX512(dx, dy *float32, idx *int32, planes, h, w, base int) {
	panic("vec: no assembly")
}
