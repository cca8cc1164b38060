package encode

import (
	"fmt"

	"github.com/chewxy/hm"
	"github.com/contrastream/contrastream/stages/internal/vec"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// convGeom is the geometry of a 2-D convolution without bias on N×C×H×W
// inputs: O filters of C×K×K, stride S, zero padding P on every side.
type convGeom struct {
	n, c, h, w int
	o, k, s, p int
	oh, ow     int
}

func newConvGeom(n, c, h, w, o, k, s, p int) (convGeom, error) {
	g := convGeom{n: n, c: c, h: h, w: w, o: o, k: k, s: s, p: p}
	if n < 1 || c < 1 || h < 1 || w < 1 || o < 1 || k < 1 || s < 1 || p < 0 {
		return g, fmt.Errorf("conv: bad geometry %+v", g)
	}
	g.oh = (h+2*p-k)/s + 1
	g.ow = (w+2*p-k)/s + 1
	if h+2*p < k || w+2*p < k {
		return g, fmt.Errorf("conv: %d×%d kernel larger than the padded %d×%d input", k, k, h+2*p, w+2*p)
	}
	return g, nil
}

func (g convGeom) xShape() tensor.Shape { return tensor.Shape{g.n, g.c, g.h, g.w} }
func (g convGeom) wShape() tensor.Shape { return tensor.Shape{g.o, g.c, g.k, g.k} }
func (g convGeom) yShape() tensor.Shape { return tensor.Shape{g.n, g.o, g.oh, g.ow} }

// rows is the number of rows of the column matrix: C×K×K.
func (g convGeom) rows() int { return g.c * g.k * g.k }

// cols is the number of output positions of one image: OH×OW.
func (g convGeom) cols() int { return g.oh * g.ow }

// im2col writes the columns of one C×H×W image x into col, a
// (C·K·K)×(OH·OW) row-major matrix: row (c, ky, kx), column (oy, ox) holds
// x[c, oy·S+ky−P, ox·S+kx−P], or 0 in the padding.
func (g convGeom) im2col(x, col []float32) {
	hw := g.h * g.w
	r := 0
	for c := 0; c < g.c; c++ {
		xc := x[c*hw : (c+1)*hw]
		for ky := 0; ky < g.k; ky++ {
			for kx := 0; kx < g.k; kx++ {
				row := col[r*g.cols() : (r+1)*g.cols()]
				r++
				if g.s == 1 && g.ow == g.w {
					g.im2colSame(xc, row, ky, kx)
					continue
				}
				for oy := 0; oy < g.oh; oy++ {
					iy := oy*g.s + ky - g.p
					out := row[oy*g.ow : (oy+1)*g.ow]
					if iy < 0 || iy >= g.h {
						clear(out)
						continue
					}
					in := xc[iy*g.w : (iy+1)*g.w]
					if g.s == 1 {
						// ix = ox + kx - p: valid for ox in [lo, hi).
						lo, hi := max(0, g.p-kx), min(g.ow, g.w+g.p-kx)
						if hi <= lo {
							clear(out)
							continue
						}
						clear(out[:lo])
						copy(out[lo:hi], in[lo+kx-g.p:hi+kx-g.p])
						clear(out[hi:])
						continue
					}
					for ox := range out {
						ix := ox*g.s + kx - g.p
						if ix < 0 || ix >= g.w {
							out[ox] = 0
						} else {
							out[ox] = in[ix]
						}
					}
				}
			}
		}
	}
}

// sameSpan returns, for im2col's row (ky, kx) of a stride-1 convolution
// whose output rows are as wide as its input's (OW = W, "same" padding),
// the output rows [oy0, oy1) that lie inside the image and the columns
// [lo, hi) that do. Within those rows the row's values are one contiguous
// run of xc, starting at xc[start] for column 0 of row oy0, but for the
// columns outside [lo, hi), which hold the neighbouring rows' ends.
func (g convGeom) sameSpan(ky, kx int) (oy0, oy1, lo, hi, start int) {
	oy0, oy1 = max(0, g.p-ky), min(g.oh, g.h+g.p-ky)
	lo, hi = max(0, g.p-kx), min(g.ow, g.w+g.p-kx)
	start = (oy0+ky-g.p)*g.w + kx - g.p
	return oy0, oy1, lo, hi, start
}

// im2colSame is im2col's row (ky, kx) for stride 1 and OW = W: one copy
// of the contiguous run, then zeros in the padding.
func (g convGeom) im2colSame(xc, row []float32, ky, kx int) {
	oy0, oy1, lo, hi, start := g.sameSpan(ky, kx)
	if oy1 <= oy0 || hi <= lo {
		clear(row)
		return
	}
	clear(row[:oy0*g.ow])
	clear(row[oy1*g.ow:])
	run := row[oy0*g.ow : oy1*g.ow]
	end := len(run) - (g.ow - hi)
	copy(run[lo:end], xc[start+lo:start+end])
	g.clearPadding(run, lo, hi)
}

// clearPadding zeroes the columns outside [lo, hi) of each OW-wide row of
// run: a few values a row, stored one by one (clear would call memclr
// for each).
func (g convGeom) clearPadding(run []float32, lo, hi int) {
	for o := 0; o+g.ow <= len(run); o += g.ow {
		r := run[o : o+g.ow]
		for j := 0; j < lo; j++ {
			r[j] = 0
		}
		for j := hi; j < len(r); j++ {
			r[j] = 0
		}
	}
}

// col2im adds the columns col back into one C×H×W image dx: the adjoint
// of im2col. For stride 1 and OW = W it sets col's padding entries (which
// im2col sets to 0) to 0 on the way: col is scratch.
func (g convGeom) col2im(col, dx []float32) {
	hw := g.h * g.w
	r := 0
	for c := 0; c < g.c; c++ {
		dc := dx[c*hw : (c+1)*hw]
		for ky := 0; ky < g.k; ky++ {
			for kx := 0; kx < g.k; kx++ {
				row := col[r*g.cols() : (r+1)*g.cols()]
				r++
				if g.s == 1 && g.ow == g.w {
					// One add of the contiguous run, whose padding
					// entries (which land on the neighbouring rows'
					// ends) are zeroed first.
					oy0, oy1, lo, hi, start := g.sameSpan(ky, kx)
					if oy1 <= oy0 || hi <= lo {
						continue
					}
					run := row[oy0*g.ow : oy1*g.ow]
					g.clearPadding(run, lo, hi)
					end := len(run) - (g.ow - hi)
					vec.Add(dc[start+lo:start+end], run[lo:end])
					continue
				}
				for oy := 0; oy < g.oh; oy++ {
					iy := oy*g.s + ky - g.p
					if iy < 0 || iy >= g.h {
						continue
					}
					in := row[oy*g.ow : (oy+1)*g.ow]
					out := dc[iy*g.w : (iy+1)*g.w]
					if g.s == 1 {
						lo, hi := max(0, g.p-kx), min(g.ow, g.w+g.p-kx)
						if hi <= lo {
							continue
						}
						vec.Add(out[lo+kx-g.p:hi+kx-g.p], in[lo:hi])
						continue
					}
					for ox, v := range in {
						ix := ox*g.s + kx - g.p
						if ix >= 0 && ix < g.w {
							out[ix] += v
						}
					}
				}
			}
		}
	}
}

// convOp is a 2-D convolution without bias, y = conv(x, w), as PyTorch's
// nn.Conv2d(bias=False): inputs x (N×C×H×W) and w (O×C×K×K), output
// N×O×OH×OW. It works image by image: im2col, then one SGEMM
// y_n = W·col_n through sgemm (blas.go). Its buffers (output and one
// column matrix) are allocated once.
//
// gorgonia's own Conv2d builds an im2col node and a reshaped matrix
// product, which allocate the whole N×(C·K·K)×(OH·OW) column tensor and
// several transposed copies every run.
type convOp struct {
	opBase
	st  *runState
	geo convGeom
	out *tensor.Dense
	col []float32
}

func newConvOp(name string, st *runState, geo convGeom) *convOp {
	return &convOp{opBase: newBase("conv", name), st: st, geo: geo}
}

// Arity is 2: x and w.
func (op *convOp) Arity() int { return 2 }

// Type is Tensor-4 a → Tensor-4 a → Tensor-4 a.
func (op *convOp) Type() hm.Type { return fnType(4, 4, 4) }

// InferShape checks x and w and returns N×O×OH×OW.
func (op *convOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	return inferShapes(op.id, ds, []tensor.Shape{op.geo.xShape(), op.geo.wShape()}, op.geo.yShape())
}

// Do computes the convolution into the op's output buffer.
func (op *convOp) Do(vs ...G.Value) (v G.Value, err error) {
	defer catch(op.id, &err)
	if op.st != nil && op.st.reuse && op.out != nil {
		return op.out, nil
	}
	in, err := f32s(op.id, vs, []tensor.Shape{op.geo.xShape(), op.geo.wShape()})
	if err != nil {
		return nil, err
	}
	out := buffer(&op.out, op.geo.yShape())
	op.forward(in[0], in[1], out.Float32s())
	return out, nil
}

func (op *convOp) forward(x, w, y []float32) {
	g := op.geo
	col := scratch(&op.col, g.rows()*g.cols())
	xs, ys := g.c*g.h*g.w, g.o*g.cols()
	for n := 0; n < g.n; n++ {
		g.im2col(x[n*xs:(n+1)*xs], col)
		sgemm(false, false, g.o, g.cols(), g.rows(), 1, w, g.rows(), col, g.cols(), 0, y[n*ys:(n+1)*ys], g.cols())
	}
}

// DiffWRT is true for x and w.
func (op *convOp) DiffWRT(int) []bool { return []bool{true, true} }

// SymDiff returns the nodes dx = convGradX(w, dy) and dw = convGradW(x, dy).
func (op *convOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dx, err := G.ApplyOp(&convGradXOp{opBase: newBase("conv.dx", op.id), fwd: op}, inputs[1], grad)
	if err != nil {
		return nil, err
	}
	dw, err := G.ApplyOp(&convGradWOp{opBase: newBase("conv.dw", op.id), fwd: op}, inputs[0], grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx, dw}, nil
}

// DoDiff adds dx and dw into the dual values of x and w.
func (op *convOp) DoDiff(ctx G.ExecutionContext, inputs G.Nodes, output *G.Node) (err error) {
	gy, err := outGrad(output)
	if err != nil {
		return err
	}
	dxOp := &convGradXOp{opBase: newBase("conv.dx", op.id), fwd: op}
	dx, err := dxOp.Do(inputs[1].Value(), gy)
	if err != nil {
		return err
	}
	dwOp := &convGradWOp{opBase: newBase("conv.dw", op.id), fwd: op}
	dw, err := dwOp.Do(inputs[0].Value(), gy)
	if err != nil {
		return err
	}
	if err := addGrad(inputs[0], dx.(*tensor.Dense).Float32s()); err != nil {
		return err
	}
	return addGrad(inputs[1], dw.(*tensor.Dense).Float32s())
}

// convGradXOp is the gradient of a convolution with respect to its input:
// dx = convGradX(w, dy), image by image dcol = Wᵀ·dy_n, then col2im.
type convGradXOp struct {
	opBase
	fwd  *convOp
	out  *tensor.Dense
	wt   []float32 // Wᵀ, (C·K·K)×O
	dcol []float32
}

func (op *convGradXOp) Arity() int    { return 2 }
func (op *convGradXOp) Type() hm.Type { return fnType(4, 4, 4) }
func (op *convGradXOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	g := op.fwd.geo
	return inferShapes(op.id, ds, []tensor.Shape{g.wShape(), g.yShape()}, g.xShape())
}

func (op *convGradXOp) Do(vs ...G.Value) (v G.Value, err error) {
	defer catch(op.id, &err)
	g := op.fwd.geo
	in, err := f32s(op.id, vs, []tensor.Shape{g.wShape(), g.yShape()})
	if err != nil {
		return nil, err
	}
	w, dy := in[0], in[1]
	out := buffer(&op.out, g.xShape())
	dx := out.Float32s()
	clear(dx)
	dcol := scratch(&op.dcol, g.rows()*g.cols())
	// gonum's SGEMM is several times slower with a transposed A than
	// without: transpose W once.
	wt := scratch(&op.wt, len(w))
	for o := 0; o < g.o; o++ {
		for r, e := range w[o*g.rows() : (o+1)*g.rows()] {
			wt[r*g.o+o] = e
		}
	}
	xs, ys := g.c*g.h*g.w, g.o*g.cols()
	for n := 0; n < g.n; n++ {
		sgemm(false, false, g.rows(), g.cols(), g.o, 1, wt, g.o, dy[n*ys:(n+1)*ys], g.cols(), 0, dcol, g.cols())
		g.col2im(dcol, dx[n*xs:(n+1)*xs])
	}
	return out, nil
}

// convGradWOp is the gradient of a convolution with respect to its
// weights: dw = convGradW(x, dy) = Σ_n dy_n·col_nᵀ.
type convGradWOp struct {
	opBase
	fwd *convOp
	out *tensor.Dense
	col []float32
}

func (op *convGradWOp) Arity() int    { return 2 }
func (op *convGradWOp) Type() hm.Type { return fnType(4, 4, 4) }
func (op *convGradWOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	g := op.fwd.geo
	return inferShapes(op.id, ds, []tensor.Shape{g.xShape(), g.yShape()}, g.wShape())
}

func (op *convGradWOp) Do(vs ...G.Value) (v G.Value, err error) {
	defer catch(op.id, &err)
	g := op.fwd.geo
	in, err := f32s(op.id, vs, []tensor.Shape{g.xShape(), g.yShape()})
	if err != nil {
		return nil, err
	}
	x, dy := in[0], in[1]
	out := buffer(&op.out, g.wShape())
	dw := out.Float32s()
	col := scratch(&op.col, g.rows()*g.cols())
	xs, ys := g.c*g.h*g.w, g.o*g.cols()
	for n := 0; n < g.n; n++ {
		g.im2col(x[n*xs:(n+1)*xs], col)
		beta := float32(1)
		if n == 0 {
			beta = 0
		}
		sgemm(false, true, g.o, g.rows(), g.cols(), 1, dy[n*ys:(n+1)*ys], g.cols(), col, g.cols(), beta, dw, g.rows())
	}
	return out, nil
}
