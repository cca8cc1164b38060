package encode

import (
	"math"

	"gorgonia.org/tensor"
)

// newLayerNorm is PyTorch's nn.LayerNorm(d, eps) over the rows of an m×d
// matrix: inputs x, γ (d) and β (d); output y = γ·x̂ + β with
// x̂ = (x − μ)/√(σ² + ε), μ and σ² the row's mean and biased variance
// (accumulated in float64). The forward pass keeps μ and 1/√(σ²+ε) per
// row for the gradients:
//
//	dβ = Σ_rows dy    dγ = Σ_rows dy·x̂
//	dx = (g − mean(g) − x̂·mean(g·x̂)) / √(σ²+ε),  g = dy·γ  (per row)
//
// gorgonia v0.9.18 has no LayerNorm; built from its Mean, Sub, Square and
// broadcasts it would allocate a tensor per op every run.
func newLayerNorm(name string, st *runState, m, d int, eps float64) *layerOp {
	x, v := tensor.Shape{m, d}, tensor.Shape{d}
	mean, inv := make([]float32, m), make([]float32, m)
	op := newLayerOp("layernorm", name, st, func(in [][]float32, out []float32) {
		xs, g, b := in[0], in[1], in[2]
		for r := 0; r < m; r++ {
			row := xs[r*d : (r+1)*d]
			var s float64
			for _, e := range row {
				s += float64(e)
			}
			mu := s / float64(d)
			var ss float64
			for _, e := range row {
				ss += (float64(e) - mu) * (float64(e) - mu)
			}
			is := 1 / math.Sqrt(ss/float64(d)+eps)
			mean[r], inv[r] = float32(mu), float32(is)
			y := out[r*d : (r+1)*d]
			for j, e := range row {
				y[j] = float32((float64(e)-mu)*is)*g[j] + b[j]
			}
		}
	}, x, x, v, v)
	op.grads = func() []gradSpec {
		var acc []float64
		return []gradSpec{
			{newFnOp("layernorm.dx", name, func(in [][]float32, dx []float32) {
				xs, g, dy := in[0], in[1], in[2]
				for r := 0; r < m; r++ {
					mu, is := mean[r], inv[r]
					row, gy := xs[r*d:(r+1)*d], dy[r*d:(r+1)*d]
					var a, b float64
					for j, e := range row {
						gj := float64(gy[j] * g[j])
						a += gj
						b += gj * float64((e-mu)*is)
					}
					a /= float64(d)
					b /= float64(d)
					o := dx[r*d : (r+1)*d]
					for j, e := range row {
						xh := float64((e - mu) * is)
						o[j] = float32((float64(gy[j]*g[j]) - a - xh*b) * float64(is))
					}
				}
			}, x, x, v, x), []int{0, 1, argGrad}},
			{newFnOp("layernorm.dgamma", name, func(in [][]float32, dg []float32) {
				xs, dy := in[0], in[1]
				a := scratch64(&acc, d)
				clear(a)
				for r := 0; r < m; r++ {
					mu, is := mean[r], inv[r]
					gy := dy[r*d : (r+1)*d]
					for j, e := range xs[r*d : (r+1)*d] {
						a[j] += float64(gy[j] * (e - mu) * is)
					}
				}
				for j, e := range a {
					dg[j] = float32(e)
				}
			}, v, x, x), []int{0, argGrad}},
			{newFnOp("layernorm.dbeta", name, func(in [][]float32, db []float32) {
				colSum(in[0], m, d, db, &acc)
			}, v, x), []int{argGrad}},
		}
	}
	return op
}
