package vec

import "math"

// The Go implementations. Each performs the assembly's float32 operations
// in the same order; float32(a*b) keeps the compiler from fusing a product
// and a sum into one FMA (as it may for GOAMD64=v3), which the assembly
// does not use either.

// reduce16 adds the 16 float64 lanes of a reduction as the assembly does:
// h[i] = f[i]+f[i+8], g[i] = h[i]+h[i+4], then (g0+g2) + (g1+g3).
func reduce16(f *[16]float64) float64 {
	var h [8]float64
	for i := range h {
		h[i] = f[i] + f[i+8]
	}
	var g [4]float64
	for i := range g {
		g[i] = h[i] + h[i+4]
	}
	return (g[0] + g[2]) + (g[1] + g[3])
}

// fold adds a block's 64 float32 accumulators into the 16 float64 lanes.
func fold(f *[16]float64, a *[64]float32) {
	for l := range 16 {
		f[l] += float64((a[l] + a[16+l]) + (a[32+l] + a[48+l]))
	}
}

func sumGo(x []float32) float64 {
	var f [16]float64
	for len(x) > 0 {
		b := x[:min(len(x), Block)]
		x = x[len(b):]
		var a [64]float32
		for i, e := range b {
			a[i&63] += e
		}
		fold(&f, &a)
	}
	return reduce16(&f)
}

func sumSqDevGo(x []float32, m float32) float64 {
	var f [16]float64
	for len(x) > 0 {
		b := x[:min(len(x), Block)]
		x = x[len(b):]
		var a [64]float32
		for i, e := range b {
			d := e - m
			a[i&63] += float32(d * d)
		}
		fold(&f, &a)
	}
	return reduce16(&f)
}

// keep returns g where y > 0 (its bits, as an unsigned number, lie in
// [1, +Inf]: neither ±0, negative nor NaN), else +0, without a branch.
func keep(y, g float32) float32 {
	u := math.Float32bits(g)
	if math.Float32bits(y)-1 >= 0x7f800000 {
		u = 0
	}
	return math.Float32frombits(u)
}

// dotDevGo is DotDev, or DotDevReLU when y is not nil.
func dotDevGo(y, g, x []float32, m float32) (dot, sum float64) {
	var fd, fs [16]float64
	for len(g) > 0 {
		n := min(len(g), Block)
		gb, xb := g[:n], x[:n]
		var yb []float32
		if y != nil {
			yb, y = y[:n], y[n:]
		}
		g, x = g[n:], x[n:]
		var ad, as [64]float32
		for i, e := range gb {
			if yb != nil {
				e = keep(yb[i], e)
			}
			ad[i&63] += float32(e * (xb[i] - m))
			as[i&63] += e
		}
		fold(&fd, &ad)
		fold(&fs, &as)
	}
	return reduce16(&fd), reduce16(&fs)
}

func scaleShiftGo(y, x []float32, a, b float32) {
	x = x[:len(y)]
	for i, e := range x {
		y[i] = float32(e*a) + b
	}
}

func scaleShiftReLUGo(y, x []float32, a, b float32) {
	x = x[:len(y)]
	for i, e := range x {
		y[i] = max(float32(e*a)+b, 0)
	}
}

func reluMaskGo(m, y, dy []float32) {
	m, dy = m[:len(y)], dy[:len(y)]
	for i, e := range y {
		m[i] = keep(e, dy[i])
	}
}

// bnGradInputGo is BNGradInput, or BNGradInputReLU when y is not nil.
func bnGradInputGo(dx, y, g, x []float32, a, mb, m, k float32) {
	g, x = g[:len(dx)], x[:len(dx)]
	if y == nil {
		for i, e := range g {
			dx[i] = a * ((e - mb) - float32((x[i]-m)*k))
		}
		return
	}
	y = y[:len(dx)]
	for i, e := range g {
		e = keep(y[i], e)
		dx[i] = a * ((e - mb) - float32((x[i]-m)*k))
	}
}

func addGo(dst, src []float32) {
	src = src[:len(dst)]
	for i, e := range src {
		dst[i] += e
	}
}

// maxPool2Go is MaxPool2's loop, without a branch per value: the index
// picks are conditional moves and the values come from max.
func maxPool2Go(y []float32, idx []int32, x []float32, planes, h, w int, base int32) {
	oh, ow := h/2, w/2
	o := 0
	for p := range planes {
		for oy := range oh {
			r0 := p*h*w + 2*oy*w
			r1 := r0 + w
			top, bot := x[r0:r0+2*ow], x[r1:r1+2*ow]
			ys, is := y[o:o+ow], idx[o:o+ow]
			for ox := range ys {
				a, b, c, d := top[2*ox], top[2*ox+1], bot[2*ox], bot[2*ox+1]
				i := base + int32(r0+2*ox)
				if b > a {
					i++
				}
				j := base + int32(r1+2*ox)
				if d > c {
					j++
				}
				m1, m2 := max(a, b), max(c, d)
				if m2 > m1 {
					i = j
				}
				ys[ox], is[ox] = max(m1, m2), i
			}
			o += ow
		}
	}
}

// maxPool2GradGo is MaxPool2Grad's loop over the windows.
func maxPool2GradGo(dx, dy []float32, idx []int32, planes, h, w int, base int32) {
	oh, ow := h/2, w/2
	o := 0
	for p := range planes {
		for oy := range oh {
			r0 := p*h*w + 2*oy*w
			top, bot := dx[r0:r0+2*ow], dx[r0+w:r0+w+2*ow]
			for ox, g := range dy[o : o+ow] {
				d := idx[o+ox] - base - int32(r0+2*ox)
				g0 := 0 + g
				top[2*ox], top[2*ox+1], bot[2*ox], bot[2*ox+1] = 0, 0, 0, 0
				switch d {
				case 0:
					top[2*ox] = g0
				case 1:
					top[2*ox+1] = g0
				case int32(w):
					bot[2*ox] = g0
				case int32(w) + 1:
					bot[2*ox+1] = g0
				}
			}
			o += ow
		}
	}
}
