package augment

import "math"

// rotate writes src (c planes of size×size) rotated counter-clockwise by
// deg degrees about the centre to dst, sampling bilinearly with zero
// outside the image (torchvision's rotate with fill 0, expand false).
func rotate(src, dst []float32, c, size int, deg float64) {
	rad := deg * math.Pi / 180
	sin, cos := math.Sincos(rad)
	// Make multiples of 90° exact.
	sin, cos = snap(sin), snap(cos)
	ctr := float64(size-1) / 2
	n := size * size
	for y := range size {
		dy := float64(y) - ctr
		for x := range size {
			dx := float64(x) - ctr
			sx := ctr + cos*dx - sin*dy
			sy := ctr + sin*dx + cos*dy
			x0f, y0f := math.Floor(sx), math.Floor(sy)
			fx, fy := float32(sx-x0f), float32(sy-y0f)
			x0, y0 := int(x0f), int(y0f)
			w00, w01 := (1-fx)*(1-fy), fx*(1-fy)
			w10, w11 := (1-fx)*fy, fx*fy
			for k := range c {
				sp := src[k*n : (k+1)*n]
				at := func(xx, yy int) float32 {
					if xx < 0 || yy < 0 || xx >= size || yy >= size {
						return 0
					}
					return sp[yy*size+xx]
				}
				v := w00*at(x0, y0) + w01*at(x0+1, y0) + w10*at(x0, y0+1) + w11*at(x0+1, y0+1)
				dst[k*n+y*size+x] = v
			}
		}
	}
}

func snap(v float64) float64 {
	switch {
	case math.Abs(v) < 1e-12:
		return 0
	case math.Abs(v-1) < 1e-12:
		return 1
	case math.Abs(v+1) < 1e-12:
		return -1
	}
	return v
}

// gaussian fills k with the normalised Gaussian kernel of standard
// deviation sigma and radius ⌈3σ⌉ (torchvision's _get_gaussian_kernel1d
// with kernel size 2⌈3σ⌉+1), the radius capped at maxRadius (≥ 0), and
// returns it.
func gaussian(k []float32, sigma float64, maxRadius int) []float32 {
	r := min(int(math.Ceil(3*sigma)), max(0, maxRadius))
	k = k[:0]
	var sum float64
	for i := -r; i <= r; i++ {
		sum += math.Exp(-0.5 * float64(i*i) / (sigma * sigma))
	}
	for i := -r; i <= r; i++ {
		k = append(k, float32(math.Exp(-0.5*float64(i*i)/(sigma*sigma))/sum))
	}
	return k
}

// reflect maps i into [0, n) by reflection without repeating the edge
// (… 2 1 | 0 1 2 … n−1 | n−2 …), as torch's "reflect" padding.
func reflect(i, n int) int {
	if n == 1 {
		return 0
	}
	period := 2 * (n - 1)
	i %= period
	if i < 0 {
		i += period
	}
	if i >= n {
		i = period - i
	}
	return i
}

// blur convolves c planes of size×size with the separable kernel k, in
// place, using tmp (len ≥ size×size) for the intermediate pass.
func blur(d, tmp []float32, c, size int, k []float32) {
	r := len(k) / 2
	n := size * size
	tmp = tmp[:n]
	for ch := range c {
		p := d[ch*n : (ch+1)*n]
		// Horizontal: p → tmp.
		for y := range size {
			row := p[y*size : (y+1)*size]
			out := tmp[y*size : (y+1)*size]
			for x := range size {
				var acc float32
				if x >= r && x+r < size {
					in := row[x-r : x+r+1]
					for j, w := range k {
						acc += w * in[j]
					}
				} else {
					for j, w := range k {
						acc += w * row[reflect(x+j-r, size)]
					}
				}
				out[x] = acc
			}
		}
		// Vertical: tmp → p.
		for y := range size {
			out := p[y*size : (y+1)*size]
			clear(out)
			for j, w := range k {
				in := tmp[reflect(y+j-r, size)*size:]
				in = in[:size]
				for x, v := range in {
					out[x] += w * v
				}
			}
		}
	}
}
