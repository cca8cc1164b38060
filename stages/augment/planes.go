package augment

import (
	"image"
	"image/color"
)

// planes is an image as float32 channel planes in [0, 1], CHW order.
type planes struct {
	c, h, w int
	data    []float32 // len c*h*w
}

func (p *planes) plane(c int) []float32 { return p.data[c*p.h*p.w : (c+1)*p.h*p.w] }

// isGray reports whether img has one channel.
func isGray(img image.Image) bool {
	switch img.(type) {
	case *image.Gray, *image.Gray16:
		return true
	}
	m := img.ColorModel()
	return m == color.GrayModel || m == color.Gray16Model
}

// Luma weights of ITU-R 601-2, as PIL and torchvision's rgb_to_grayscale.
const (
	lumaR = 0.299
	lumaG = 0.587
	lumaB = 0.114
)

var u8 = func() (t [256]float32) {
	for i := range t {
		t[i] = float32(i) / 255
	}
	return
}()

// grow returns s resized to n, reusing its storage when large enough.
func grow(s []float32, n int) []float32 {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]float32, n)
}

// loadPlanes converts img to c planes (c is 1 or 3) in dst, reusing
// dst.data. A gray image loaded as 3 planes repeats its one plane; a colour
// image loaded as 1 plane becomes luma.
func loadPlanes(img image.Image, c int, dst *planes) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	dst.c, dst.h, dst.w = c, h, w
	dst.data = grow(dst.data, c*h*w)
	n := h * w
	if isGray(img) {
		p := dst.data[:n]
		switch m := img.(type) {
		case *image.Gray:
			for y := 0; y < h; y++ {
				row := m.Pix[(y)*m.Stride : y*m.Stride+w]
				out := p[y*w : (y+1)*w]
				for x, v := range row {
					out[x] = u8[v]
				}
			}
		default:
			for y := 0; y < h; y++ {
				for x := 0; x < w; x++ {
					g := color.Gray16Model.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.Gray16)
					p[y*w+x] = float32(g.Y) / 65535
				}
			}
		}
		for k := 1; k < c; k++ {
			copy(dst.data[k*n:(k+1)*n], p)
		}
		return
	}
	var r, g, bl []float32
	if c == 3 {
		r, g, bl = dst.data[:n], dst.data[n:2*n], dst.data[2*n:3*n]
	}
	lum := dst.data[:n]
	put := func(i int, rv, gv, bv float32) {
		if c == 3 {
			r[i], g[i], bl[i] = rv, gv, bv
		} else {
			lum[i] = lumaR*rv + lumaG*gv + lumaB*bv
		}
	}
	switch m := img.(type) {
	case *image.RGBA:
		rgbaRows(m.Pix, m.Stride, w, h, c, r, g, bl, lum)
	case *image.NRGBA:
		rgbaRows(m.Pix, m.Stride, w, h, c, r, g, bl, lum)
	case *image.YCbCr:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				yi := m.YOffset(b.Min.X+x, b.Min.Y+y)
				ci := m.COffset(b.Min.X+x, b.Min.Y+y)
				rv, gv, bv := color.YCbCrToRGB(m.Y[yi], m.Cb[ci], m.Cr[ci])
				put(y*w+x, u8[rv], u8[gv], u8[bv])
			}
		}
	case *image.Paletted:
		var lut [256][3]float32
		for i, col := range m.Palette {
			cr, cg, cb, _ := col.RGBA()
			lut[i] = [3]float32{float32(cr) / 65535, float32(cg) / 65535, float32(cb) / 65535}
		}
		for y := 0; y < h; y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+w]
			for x, v := range row {
				e := lut[v]
				put(y*w+x, e[0], e[1], e[2])
			}
		}
	default:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				cr, cg, cb, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
				put(y*w+x, float32(cr)/65535, float32(cg)/65535, float32(cb)/65535)
			}
		}
	}
}

// rgbaRows reads 8-bit RGBA or NRGBA pixels; alpha is ignored (an RGBA
// image's colours are premultiplied, so they are composited on black).
func rgbaRows(pix []uint8, stride, w, h, c int, r, g, b, lum []float32) {
	for y := 0; y < h; y++ {
		row := pix[y*stride : y*stride+4*w]
		o := y * w
		if c == 3 {
			rr := r[o : o+w]
			gg, bb := g[o:o+len(rr)], b[o:o+len(rr)]
			for x := range rr {
				px := row[4*x : 4*x+4 : 4*x+4]
				rr[x], gg[x], bb[x] = u8[px[0]], u8[px[1]], u8[px[2]]
			}
			continue
		}
		ll := lum[o : o+w]
		for x := 0; x < w; x++ {
			px := row[4*x : 4*x+3 : 4*x+3]
			ll[x] = lumaR*u8[px[0]] + lumaG*u8[px[1]] + lumaB*u8[px[2]]
		}
	}
}
