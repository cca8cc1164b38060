package augment

import "math"

// cropBox is a crop in whole pixels: columns [x, x+w), rows [y, y+h).
type cropBox struct{ x, y, w, h int }

// sampleCrop draws a crop box of a W×H image as torchvision's
// RandomResizedCrop.get_params does: up to 10 tries of a box of area
// U(scale)·W·H and aspect ratio exp(U(log ratio)), rounded half to even as
// Python does; if none fits, a centre crop clamped to the ratio range.
func sampleCrop(r *rng, W, H int, scale, ratio [2]float64) cropBox {
	area := float64(W * H)
	logLo, logHi := math.Log(ratio[0]), math.Log(ratio[1])
	for range 10 {
		target := area * r.uniform(scale[0], scale[1])
		aspect := math.Exp(r.uniform(logLo, logHi))
		w := int(math.RoundToEven(math.Sqrt(target * aspect)))
		h := int(math.RoundToEven(math.Sqrt(target / aspect)))
		if w > 0 && h > 0 && w <= W && h <= H {
			y := r.intn(H - h + 1)
			x := r.intn(W - w + 1)
			return cropBox{x, y, w, h}
		}
	}
	return fallbackCrop(W, H, ratio)
}

// fallbackCrop is sampleCrop's box when no try fits: the centred box of
// the largest area whose aspect ratio is the image's clamped to ratio.
func fallbackCrop(W, H int, ratio [2]float64) cropBox {
	inRatio := float64(W) / float64(H)
	w, h := W, H
	switch {
	case inRatio < ratio[0]:
		h = int(math.RoundToEven(float64(w) / ratio[0]))
	case inRatio > ratio[1]:
		w = int(math.RoundToEven(float64(h) * ratio[1]))
	}
	w, h = max(1, min(w, W)), max(1, min(h, H))
	return cropBox{(W - w) / 2, (H - h) / 2, w, h}
}

// axis holds the resampling weights of one axis: output o reads the k
// input positions start[o] … start[o]+k−1 with weights w[o*k : o*k+k]
// (some may be zero, so that every output has exactly k taps).
type axis struct {
	k     int
	start []int32
	w     []float32
	tmp   []float64
}

// set computes the weights that map the n input positions [lo, lo+n) onto
// out outputs with a triangle (bilinear) filter on pixel centres
// (align_corners = false). When shrinking, the filter widens by the scale
// factor (antialiasing, as PIL and torchvision's antialias=True do).
// Positions outside [lo, lo+n) are never read: the weights are renormalised,
// which equals clamping at the edges when enlarging. reverse mirrors the
// output (a horizontal flip).
func (a *axis) set(lo, n, out int, reverse bool) {
	scale := float64(n) / float64(out)
	support := max(1, scale)
	k := min(n, int(math.Ceil(2*support)))
	a.k = k
	if cap(a.start) < out {
		a.start = make([]int32, out)
	}
	a.start = a.start[:out]
	if cap(a.w) < out*k {
		a.w = make([]float32, out*k)
	}
	a.w = a.w[:out*k]
	if cap(a.tmp) < k {
		a.tmp = make([]float64, k)
	}
	tw := a.tmp[:k]
	for o := range out {
		center := (float64(o) + 0.5) * scale // relative to lo
		first := int(math.Floor(center - support + 0.5))
		first = max(0, min(first, n-k))
		var sum float64
		for j := range tw {
			d := math.Abs(float64(first+j)+0.5-center) / support
			wt := 0.0
			if d < 1 {
				wt = 1 - d
			}
			tw[j] = wt
			sum += wt
		}
		dst := o
		if reverse {
			dst = out - 1 - o
		}
		a.start[dst] = int32(lo + first)
		ws := a.w[dst*k : dst*k+k]
		for j, wt := range tw {
			ws[j] = float32(wt / sum)
		}
	}
}

// resizer crops and resizes planes in two separable passes.
type resizer struct {
	ax, ay axis
	tmp    []float32
}

// resize writes box of src, resized to size×size (mirrored when flip), to
// dst (len src.c*size*size).
func (rz *resizer) resize(src *planes, box cropBox, size int, flip bool, dst []float32) {
	rz.ax.set(box.x, box.w, size, flip)
	rz.ay.set(box.y, box.h, size, false)
	// Horizontal pass: rows box.y … box.y+box.h−1 of every plane, size wide.
	rz.tmp = grow(rz.tmp, src.c*box.h*size)
	kx := rz.ax.k
	for c := range src.c {
		sp := src.plane(c)
		for y := range box.h {
			row := sp[(box.y+y)*src.w : (box.y+y+1)*src.w]
			out := rz.tmp[(c*box.h+y)*size : (c*box.h+y+1)*size]
			horizontal(row, out, rz.ax.start, rz.ax.w, kx)
		}
	}
	// Vertical pass.
	ky := rz.ay.k
	for c := range src.c {
		tp := rz.tmp[c*box.h*size : (c+1)*box.h*size]
		dp := dst[c*size*size : (c+1)*size*size]
		for o := range size {
			out := dp[o*size : (o+1)*size]
			s := int(rz.ay.start[o]) - box.y
			vertical(tp[s*size:], out, rz.ay.w[o*ky:o*ky+ky], size)
		}
	}
}

// vertical sets out to the weighted sum of the len(w) consecutive rows of
// width len(out) that start at in.
func vertical(in, out, w []float32, size int) {
	switch len(w) {
	case 2:
		a, b := in[:size], in[size:2*size]
		a, b = a[:len(out)], b[:len(out)]
		w0, w1 := w[0], w[1]
		for x := range out {
			out[x] = w0*a[x] + w1*b[x]
		}
	case 3:
		a, b, c := in[:size], in[size:2*size], in[2*size:3*size]
		a, b, c = a[:len(out)], b[:len(out)], c[:len(out)]
		w0, w1, w2 := w[0], w[1], w[2]
		for x := range out {
			out[x] = w0*a[x] + w1*b[x] + w2*c[x]
		}
	default:
		clear(out)
		for j, wt := range w {
			if wt == 0 {
				continue
			}
			row := in[j*size : (j+1)*size]
			row = row[:len(out)]
			for x, v := range row {
				out[x] += wt * v
			}
		}
	}
}

func horizontal(row, out []float32, start []int32, w []float32, k int) {
	switch k {
	case 2:
		for o := range out {
			s := int(start[o])
			in := row[s : s+2 : s+2]
			ws := w[2*o : 2*o+2 : 2*o+2]
			out[o] = ws[0]*in[0] + ws[1]*in[1]
		}
	case 3:
		for o := range out {
			s := int(start[o])
			in := row[s : s+3 : s+3]
			ws := w[3*o : 3*o+3 : 3*o+3]
			out[o] = ws[0]*in[0] + ws[1]*in[1] + ws[2]*in[2]
		}
	default:
		for o := range out {
			s := int(start[o])
			in := row[s : s+k]
			ws := w[k*o : k*o+k]
			var acc float32
			for j, wt := range ws {
				acc += wt * in[j]
			}
			out[o] = acc
		}
	}
}
