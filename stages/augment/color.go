package augment

import "math"

// The colour transforms act in place on c planes of n values each, in
// [0, 1].

func clamp01(v float32) float32 {
	if v < 0 {
		return 0
	}
	if v > 1 {
		return 1
	}
	return v
}

// contrastMean is the mean of the luma (c = 3) or of the one plane.
func contrastMean(d []float32, c, n int) float64 {
	if c == 1 {
		var s float64
		for _, v := range d[:n] {
			s += float64(v)
		}
		return s / float64(n)
	}
	var sr, sg, sb float64
	for i := range n {
		sr += float64(d[i])
		sg += float64(d[n+i])
		sb += float64(d[2*n+i])
	}
	return (lumaR*sr + lumaG*sg + lumaB*sb) / float64(n)
}

// brightnessContrast returns the affine map of brightness b then contrast
// k, to be applied and clipped to [0, 1] by applyAffine or finish —
// torch_reference.py's ((v·b − m·b)·k + m·b).clamp(0, 1) with m the mean of
// v, which is v·b·k + m·b·(1 − k).
func brightnessContrast(d []float32, c, n int, b, k float64) (mul, add float32) {
	var off float64
	if k != 1 {
		off = contrastMean(d, c, n) * b * (1 - k)
	}
	return float32(b * k), float32(off)
}

// applyAffine sets every value x to clip(x·mul + add).
func applyAffine(d []float32, mul, add float32) {
	for i, v := range d {
		d[i] = clamp01(v*mul + add)
	}
}

// saturate blends a colour image with its luma: clip(s·x + (1−s)·gray).
func saturate(d []float32, n int, s float64) {
	r, g, b := d[:n], d[n:2*n], d[2*n:3*n]
	sf, gf := float32(s), float32(1-s)
	for i := range n {
		l := gf * (lumaR*r[i] + lumaG*g[i] + lumaB*b[i])
		r[i] = clamp01(sf*r[i] + l)
		g[i] = clamp01(sf*g[i] + l)
		b[i] = clamp01(sf*b[i] + l)
	}
}

// grayscale sets the three channels of a colour image to its luma.
func grayscale(d []float32, n int) {
	r, g, b := d[:n], d[n:2*n], d[2*n:3*n]
	for i := range n {
		l := lumaR*r[i] + lumaG*g[i] + lumaB*b[i]
		r[i], g[i], b[i] = l, l, l
	}
}

// shiftHue rotates the hue of a colour image by shift (a fraction of the
// colour wheel) through HSV, as torchvision's adjust_hue does.
func shiftHue(d []float32, n int, shift float64) {
	r, g, b := d[:n], d[n:2*n], d[2*n:3*n]
	sh := float32(shift)
	for i := range n {
		h, s, v := rgbToHSV(r[i], g[i], b[i])
		h += sh
		h -= float32(math.Floor(float64(h)))
		r[i], g[i], b[i] = hsvToRGB(h, s, v)
	}
}

// rgbToHSV follows torchvision's _rgb2hsv; h is in [0, 1).
func rgbToHSV(r, g, b float32) (h, s, v float32) {
	maxc := max(r, g, b)
	minc := min(r, g, b)
	if maxc == minc {
		return 0, 0, maxc
	}
	cr := maxc - minc
	s = cr / maxc
	rc, gc, bc := (maxc-r)/cr, (maxc-g)/cr, (maxc-b)/cr
	switch {
	case maxc == r:
		h = bc - gc
	case maxc == g:
		h = 2 + rc - bc
	default:
		h = 4 + gc - rc
	}
	h = h/6 + 1
	h -= float32(math.Floor(float64(h)))
	return h, s, maxc
}

// hsvToRGB follows torchvision's _hsv2rgb.
func hsvToRGB(h, s, v float32) (r, g, b float32) {
	h6 := h * 6
	fi := float32(math.Floor(float64(h6)))
	f := h6 - fi
	i := int(fi) % 6
	if i < 0 {
		i += 6
	}
	p := clamp01(v * (1 - s))
	q := clamp01(v * (1 - s*f))
	t := clamp01(v * (1 - s*(1-f)))
	switch i {
	case 0:
		return v, t, p
	case 1:
		return q, v, p
	case 2:
		return p, v, t
	case 3:
		return p, q, v
	case 4:
		return t, p, v
	default:
		return v, p, q
	}
}

// solarize inverts every value at or above threshold.
func solarize(d []float32, threshold float32) {
	for i, v := range d {
		if v >= threshold {
			d[i] = 1 - v
		}
	}
}

// finish applies the pending affine map (when affine is set) and the
// normalisation (x − mean[c]) / std[c] to every plane c, in one pass.
func finish(d []float32, c, n int, affine bool, mul, add float32, mean, std []float32) {
	for k := range c {
		m, inv := mean[k], 1/std[k]
		p := d[k*n : (k+1)*n]
		if affine {
			for i, v := range p {
				p[i] = (clamp01(v*mul+add) - m) * inv
			}
			continue
		}
		for i, v := range p {
			p[i] = (v - m) * inv
		}
	}
}
