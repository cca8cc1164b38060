package encode

import (
	"math"

	"gorgonia.org/tensor"
)

// newAttention is the core of timm's multi-head self-attention, between
// the qkv and proj Linears: input qkv ((n·t)×3D, D = heads·hd, the rows of
// n images of t tokens), output o ((n·t)×D). Column s·D + h·hd + j of qkv
// is element j of head h of q (s = 0), k (s = 1) or v (s = 2), as
// PyTorch's qkv.reshape(B, T, 3, heads, hd).permute(2, 0, 3, 1, 4) reads
// it; for each image and head
//
//	P = softmax(scale · Q·Kᵀ)  (over the last axis, t×t)    O = P·V
//
// and O is written into columns h·hd … of o, which is
// (P·V).transpose(1, 2).reshape(B, T, D). The matrix products read the
// heads in place (leading dimension 3D), so there is no reshape, permute
// or copy. The forward pass keeps P (n·heads·t·t values) for the gradient:
//
//	dV = Pᵀ·dO    dP = dO·Vᵀ    dS = P ⊙ (dP − rowsum(dP ⊙ P))
//	dQ = scale · dS·K    dK = scale · dSᵀ·Q
//
// Built from gorgonia's Reshape, Transpose, BatchedMatMul and SoftMax
// instead, the heads would be copied into contiguous tensors and back, and
// each node would allocate its output at every run (the tape machine drops
// its registers on Reset; see doc.go).
func newAttention(name string, st *runState, n, t, heads, hd int, scale float32) *layerOp {
	d := heads * hd
	in, out := tensor.Shape{n * t, 3 * d}, tensor.Shape{n * t, d}
	probs := make([]float32, n*heads*t*t)
	op := newLayerOp("attention", name, st, func(vs [][]float32, o []float32) {
		qkv := vs[0]
		for i := 0; i < n; i++ {
			x, y := qkv[i*t*3*d:], o[i*t*d:]
			for h := 0; h < heads; h++ {
				p := probs[(i*heads+h)*t*t : (i*heads+h+1)*t*t]
				q, k, v := x[h*hd:], x[d+h*hd:], x[2*d+h*hd:]
				sgemm(false, true, t, t, hd, scale, q, 3*d, k, 3*d, 0, p, t)
				softmaxRows(p, t)
				sgemm(false, false, t, hd, t, 1, p, t, v, 3*d, 0, y[h*hd:], d)
			}
		}
	}, out, in)
	op.grads = func() []gradSpec {
		var ds []float32
		return []gradSpec{{newFnOp("attention.dqkv", name, func(vs [][]float32, dqkv []float32) {
			qkv, dy := vs[0], vs[1]
			s := scratch(&ds, t*t)
			for i := 0; i < n; i++ {
				x, dx, g := qkv[i*t*3*d:], dqkv[i*t*3*d:], dy[i*t*d:]
				for h := 0; h < heads; h++ {
					p := probs[(i*heads+h)*t*t : (i*heads+h+1)*t*t]
					q, k, v := x[h*hd:], x[d+h*hd:], x[2*d+h*hd:]
					gh := g[h*hd:]
					// dV = Pᵀ·dO
					sgemm(true, false, t, hd, t, 1, p, t, gh, d, 0, dx[2*d+h*hd:], 3*d)
					// dP = dO·Vᵀ, then dS in place
					sgemm(false, true, t, t, hd, 1, gh, d, v, 3*d, 0, s, t)
					for r := 0; r < t; r++ {
						pr, sr := p[r*t:(r+1)*t], s[r*t:(r+1)*t]
						var dot float32
						for j, e := range pr {
							dot += e * sr[j]
						}
						for j, e := range pr {
							sr[j] = e * (sr[j] - dot)
						}
					}
					// dQ = scale·dS·K, dK = scale·dSᵀ·Q
					sgemm(false, false, t, hd, t, scale, s, t, k, 3*d, 0, dx[h*hd:], 3*d)
					sgemm(true, false, t, hd, t, scale, s, t, q, 3*d, 0, dx[d+h*hd:], 3*d)
				}
			}
		}, in, in, out), []int{0, argGrad}}}
	}
	return op
}

// softmaxRows replaces each row of the rows×cols matrix p by its softmax,
// shifting by the row's maximum first.
func softmaxRows(p []float32, cols int) {
	for r := 0; r+cols <= len(p); r += cols {
		row := p[r : r+cols]
		m := row[0]
		for _, e := range row[1:] {
			m = max(m, e)
		}
		var s float32
		for j, e := range row {
			e = float32(math.Exp(float64(e - m)))
			row[j] = e
			s += e
		}
		inv := 1 / s
		for j := range row {
			row[j] *= inv
		}
	}
}
