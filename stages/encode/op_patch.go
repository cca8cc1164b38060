package encode

import (
	"gorgonia.org/tensor"
)

// patchGeom is the patch grid of N×C×H×W images cut into P×P patches
// (P divides H and W): L = (H/P)·(W/P) patches an image, numbered in
// row-major order, each a row of C·P·P values ordered (c, ky, kx), as a
// Conv2d weight out×C×P×P is.
type patchGeom struct {
	n, c, h, w, p int
	gh, gw        int
}

func (g patchGeom) patches() int { return g.gh * g.gw }
func (g patchGeom) rowLen() int  { return g.c * g.p * g.p }

// patchify writes the patches of every image of x into rows, an
// (N·L)×(C·P·P) matrix.
func (g patchGeom) patchify(x, rows []float32) {
	cpp, pp := g.rowLen(), g.p*g.p
	for i := 0; i < g.n; i++ {
		img := x[i*g.c*g.h*g.w:]
		for gy := 0; gy < g.gh; gy++ {
			for gx := 0; gx < g.gw; gx++ {
				row := rows[(i*g.patches()+gy*g.gw+gx)*cpp:]
				for c := 0; c < g.c; c++ {
					for ky := 0; ky < g.p; ky++ {
						src := img[(c*g.h+gy*g.p+ky)*g.w+gx*g.p:]
						copy(row[c*pp+ky*g.p:c*pp+(ky+1)*g.p], src[:g.p])
					}
				}
			}
		}
	}
}

// unpatchify is patchify's inverse: it writes rows back into the images
// x (the patches do not overlap and cover the images).
func (g patchGeom) unpatchify(rows, x []float32) {
	cpp, pp := g.rowLen(), g.p*g.p
	for i := 0; i < g.n; i++ {
		img := x[i*g.c*g.h*g.w:]
		for gy := 0; gy < g.gh; gy++ {
			for gx := 0; gx < g.gw; gx++ {
				row := rows[(i*g.patches()+gy*g.gw+gx)*cpp:]
				for c := 0; c < g.c; c++ {
					for ky := 0; ky < g.p; ky++ {
						dst := img[(c*g.h+gy*g.p+ky)*g.w+gx*g.p:]
						copy(dst[:g.p], row[c*pp+ky*g.p:c*pp+(ky+1)*g.p])
					}
				}
			}
		}
	}
}

// newPatchEmbed is timm's PatchEmbed (a Conv2d of kernel and stride P with
// bias, flattened to tokens), the class token and the position
// embeddings: inputs x (N×C×H×W), W (D×C×P×P), b (D), cls (1×1×D) and
// pos (1×T×D), T = 1 + L; output the (N·T)×D token matrix whose row i·T
// is cls + pos[0] and row i·T + 1 + l is W·patch_l + b + pos[1+l]. As the
// patches do not overlap, the convolution is one matrix product of the
// (N·L)×(C·P·P) patch rows (kept for dW) by Wᵀ. Gradients, with dP the
// patch tokens' rows of dy:
//
//	dW = dPᵀ·rows   db = Σ dP   dcls = Σ_i dy[i·T]   dpos[t] = Σ_i dy[i·T+t]
//	dx = unpatchify(dP·W)
func newPatchEmbed(name string, st *runState, n, c, h, w, p, d int) *layerOp {
	g := patchGeom{n: n, c: c, h: h, w: w, p: p, gh: h / p, gw: w / p}
	l, cpp := g.patches(), g.rowLen()
	t := 1 + l
	xs, ws, bs := tensor.Shape{n, c, h, w}, tensor.Shape{d, c, p, p}, tensor.Shape{d}
	cs, ps, ys := tensor.Shape{1, 1, d}, tensor.Shape{1, t, d}, tensor.Shape{n * t, d}
	rows := make([]float32, n*l*cpp)
	var tok []float32 // the patch tokens, (N·L)×D
	op := newLayerOp("patch_embed", name, st, func(in [][]float32, y []float32) {
		x, wt, b, cls, pos := in[0], in[1], in[2], in[3], in[4]
		g.patchify(x, rows)
		tk := scratch(&tok, n*l*d)
		sgemm(false, true, n*l, d, cpp, 1, rows, cpp, wt, cpp, 0, tk, d)
		for i := 0; i < n; i++ {
			o := y[i*t*d : (i+1)*t*d]
			for j := 0; j < d; j++ {
				o[j] = cls[j] + pos[j]
			}
			for k := 0; k < l; k++ {
				src, dst, pe := tk[(i*l+k)*d:(i*l+k+1)*d], o[(1+k)*d:(2+k)*d], pos[(1+k)*d:(2+k)*d]
				for j, e := range src {
					dst[j] = e + b[j] + pe[j]
				}
			}
		}
	}, ys, xs, ws, bs, cs, ps)
	// gather copies the patch tokens' rows of dy into a (N·L)×D matrix.
	gather := func(dy []float32, dp *[]float32) []float32 {
		out := scratch(dp, n*l*d)
		for i := 0; i < n; i++ {
			copy(out[i*l*d:(i+1)*l*d], dy[(i*t+1)*d:(i+1)*t*d])
		}
		return out
	}
	op.grads = func() []gradSpec {
		var dpx, dpw, drows []float32
		var acc []float64
		return []gradSpec{
			{newFnOp("patch_embed.dx", name, func(in [][]float32, dx []float32) {
				dp := gather(in[1], &dpx)
				dr := scratch(&drows, n*l*cpp)
				sgemm(false, false, n*l, cpp, d, 1, dp, d, in[0], cpp, 0, dr, cpp)
				g.unpatchify(dr, dx)
			}, xs, ws, ys), []int{1, argGrad}},
			{newFnOp("patch_embed.dw", name, func(in [][]float32, dw []float32) {
				dp := gather(in[1], &dpw)
				sgemm(true, false, d, cpp, n*l, 1, dp, d, rows, cpp, 0, dw, cpp)
			}, ws, xs, ys), []int{0, argGrad}},
			{newFnOp("patch_embed.db", name, func(in [][]float32, db []float32) {
				a := scratch64(&acc, d)
				clear(a)
				for i := 0; i < n; i++ {
					for r := 1; r < t; r++ {
						for j, e := range in[0][(i*t+r)*d : (i*t+r+1)*d] {
							a[j] += float64(e)
						}
					}
				}
				for j, e := range a {
					db[j] = float32(e)
				}
			}, bs, ys), []int{argGrad}},
			{newFnOp("patch_embed.dcls", name, func(in [][]float32, dc []float32) {
				a := scratch64(&acc, d)
				clear(a)
				for i := 0; i < n; i++ {
					for j, e := range in[0][i*t*d : (i*t+1)*d] {
						a[j] += float64(e)
					}
				}
				for j, e := range a {
					dc[j] = float32(e)
				}
			}, cs, ys), []int{argGrad}},
			{newFnOp("patch_embed.dpos", name, func(in [][]float32, dpos []float32) {
				colSum(in[0], n, t*d, dpos, &acc) // the images' T×D blocks
			}, ps, ys), []int{argGrad}},
		}
	}
	return op
}
