package vec

import "fmt"

// MaxPool2 is a 2×2 max-pool of stride 2 (no padding, floor) over planes
// planes of h×w values, x[p·h·w:(p+1)·h·w], into y and idx, each holding
// planes·⌊h/2⌋·⌊w/2⌋ values in row-major order. y is each window's maximum
// by Go's max (NaN wins, +0 over −0); idx is base plus the flat index in x
// of the first maximum in row-major order (a later value wins only when it
// is greater: b over a if b > a, the bottom pair over the top one if its
// max is greater). It panics if a slice is too short.
func MaxPool2(y []float32, idx []int32, x []float32, planes, h, w int, base int32) {
	oh, ow := h/2, w/2
	if planes < 0 || h < 0 || w < 0 || len(x) < planes*h*w || len(y) < planes*oh*ow || len(idx) < planes*oh*ow {
		panic(fmt.Sprintf("vec: MaxPool2 of %d planes %d×%d on %d values into %d and %d", planes, h, w, len(x), len(y), len(idx)))
	}
	if planes == 0 || oh == 0 || ow == 0 {
		return
	}
	if useAVX512 {
		maxPool2AVX512(&y[0], &idx[0], &x[0], planes, h, w, int(base))
		return
	}
	maxPool2Go(y, idx, x, planes, h, w, base)
}

// MaxPool2Grad is the gradient of MaxPool2: it sets each 2×2 window of dx
// (planes planes of h×w values) to 0 but for +0 + dy at the window's idx
// (as MaxPool2 set them, with the same base), and the values of no window
// (the last row or column of an odd side) to 0. An idx outside its window
// adds nothing. It panics if a slice is too short.
func MaxPool2Grad(dx, dy []float32, idx []int32, planes, h, w int, base int32) {
	oh, ow := h/2, w/2
	if planes < 0 || h < 0 || w < 0 || len(dx) < planes*h*w || len(dy) < planes*oh*ow || len(idx) < planes*oh*ow {
		panic(fmt.Sprintf("vec: MaxPool2Grad of %d planes %d×%d into %d values from %d and %d", planes, h, w, len(dx), len(dy), len(idx)))
	}
	if planes == 0 {
		return
	}
	if oh == 0 || ow == 0 {
		clear(dx[:planes*h*w])
		return
	}
	if useAVX512 {
		maxPool2GradAVX512(&dx[0], &dy[0], &idx[0], planes, h, w, int(base))
	} else {
		maxPool2GradGo(dx, dy, idx, planes, h, w, base)
	}
	if h%2 == 0 && w%2 == 0 {
		return
	}
	for p := range planes {
		d := dx[p*h*w : (p+1)*h*w]
		if w%2 == 1 {
			for r := range 2 * oh {
				d[r*w+w-1] = 0
			}
		}
		if h%2 == 1 {
			clear(d[(h-1)*w:])
		}
	}
}
