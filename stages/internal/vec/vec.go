package vec

// Block is the number of values each reduction sums in float32 before
// adding them into its float64 lanes.
const Block = 1024

// Kernel names the implementation in use: "avx512" or "go".
func Kernel() string {
	if useAVX512 {
		return "avx512"
	}
	return "go"
}

// Sum returns Σx.
func Sum(x []float32) float64 {
	if useAVX512 && len(x) > 0 {
		return sumAVX512(&x[0], len(x))
	}
	return sumGo(x)
}

// SumSqDev returns Σ(x−m)², each difference and square rounded to float32.
func SumSqDev(x []float32, m float32) float64 {
	if useAVX512 && len(x) > 0 {
		return sumSqDevAVX512(&x[0], len(x), m)
	}
	return sumSqDevGo(x, m)
}

// DotDev returns Σg·(x−m) and Σg over the len(g) first values of x.
func DotDev(g, x []float32, m float32) (dot, sum float64) {
	x = x[:len(g)]
	if useAVX512 && len(g) > 0 {
		return dotDevAVX512(nil, &g[0], &x[0], len(g), m, 0)
	}
	return dotDevGo(nil, g, x, m)
}

// DotDevReLU is DotDev of g masked by y > 0: g' = g where y > 0, else 0.
func DotDevReLU(y, g, x []float32, m float32) (dot, sum float64) {
	g, x = g[:len(y)], x[:len(y)]
	if useAVX512 && len(y) > 0 {
		return dotDevAVX512(&y[0], &g[0], &x[0], len(y), m, 1)
	}
	return dotDevGo(y, g, x, m)
}

// ScaleShift sets y = x·a + b for the len(y) first values of x.
func ScaleShift(y, x []float32, a, b float32) {
	x = x[:len(y)]
	if useAVX512 && len(y) > 0 {
		scaleShiftAVX512(&y[0], &x[0], len(y), a, b, 0)
		return
	}
	scaleShiftGo(y, x, a, b)
}

// ScaleShiftReLU sets y = max(x·a + b, 0) for the len(y) first values of x,
// with Go's max: NaN stays NaN, −0 becomes +0.
func ScaleShiftReLU(y, x []float32, a, b float32) {
	x = x[:len(y)]
	if useAVX512 && len(y) > 0 {
		scaleShiftAVX512(&y[0], &x[0], len(y), a, b, 1)
		return
	}
	scaleShiftReLUGo(y, x, a, b)
}

// ReluMask sets m = dy where y > 0, else +0, for the len(y) first values of
// m and dy.
func ReluMask(m, y, dy []float32) {
	m, dy = m[:len(y)], dy[:len(y)]
	if useAVX512 && len(y) > 0 {
		reluMaskAVX512(&m[0], &y[0], &dy[0], len(y))
		return
	}
	reluMaskGo(m, y, dy)
}

// BNGradInput sets dx = a·((g − mb) − (x − m)·k), BatchNorm's input
// gradient with a = γ/σ, mb = dβ/M, m = μ and k = dγ/(σ·M), for the len(dx)
// first values of g and x.
func BNGradInput(dx, g, x []float32, a, mb, m, k float32) {
	g, x = g[:len(dx)], x[:len(dx)]
	if useAVX512 && len(dx) > 0 {
		bnGradInputAVX512(&dx[0], nil, &g[0], &x[0], len(dx), a, mb, m, k, 0)
		return
	}
	bnGradInputGo(dx, nil, g, x, a, mb, m, k)
}

// BNGradInputReLU is BNGradInput with g masked by y > 0 (the gradient
// through a ReLU whose output is y): g' = g where y > 0, else 0.
func BNGradInputReLU(dx, y, g, x []float32, a, mb, m, k float32) {
	y, g, x = y[:len(dx)], g[:len(dx)], x[:len(dx)]
	if useAVX512 && len(dx) > 0 {
		bnGradInputAVX512(&dx[0], &y[0], &g[0], &x[0], len(dx), a, mb, m, k, 1)
		return
	}
	bnGradInputGo(dx, y, g, x, a, mb, m, k)
}

// Add sets dst += src for the len(dst) first values of src.
func Add(dst, src []float32) {
	src = src[:len(dst)]
	if useAVX512 && len(dst) > 0 {
		addAVX512(&dst[0], &src[0], len(dst))
		return
	}
	addGo(dst, src)
}
