package encode

import (
	"fmt"

	"github.com/chewxy/hm"
	"github.com/contrastream/contrastream/stages/internal/vec"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// maxPoolOp is PyTorch's nn.MaxPool2d(k) (stride k, no padding, floor):
// N×C×H×W → N×C×⌊H/k⌋×⌊W/k⌋. Each output is the first maximum of its
// window in row-major order (PyTorch's choice on ties); the op remembers
// where it was for the backward op.
//
// gorgonia's MaxPool2D works, but allocates its output, its argmax
// indices and its gradient every run; this one reuses them.
type maxPoolOp struct {
	opBase
	st         *runState
	n, c, h, w int
	k          int
	oh, ow     int
	idx        []int32 // per output, the flat index of its maximum in x
	out        *tensor.Dense
}

func newMaxPoolOp(name string, st *runState, n, c, h, w, k int) (*maxPoolOp, error) {
	if k < 1 || h < k || w < k {
		return nil, fmt.Errorf("maxpool %s: %d×%d window on a %d×%d input", name, k, k, h, w)
	}
	return &maxPoolOp{opBase: newBase("maxpool", name), st: st, n: n, c: c, h: h, w: w, k: k, oh: h / k, ow: w / k}, nil
}

func (op *maxPoolOp) xShape() tensor.Shape { return tensor.Shape{op.n, op.c, op.h, op.w} }
func (op *maxPoolOp) yShape() tensor.Shape { return tensor.Shape{op.n, op.c, op.oh, op.ow} }

// Arity is 1.
func (op *maxPoolOp) Arity() int { return 1 }

// Type is Tensor-4 a → Tensor-4 a.
func (op *maxPoolOp) Type() hm.Type { return fnType(4, 4) }

// InferShape checks x and returns N×C×OH×OW.
func (op *maxPoolOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	return inferShapes(op.id, ds, []tensor.Shape{op.xShape()}, op.yShape())
}

// Do pools x into the op's output buffer.
func (op *maxPoolOp) Do(vs ...G.Value) (v G.Value, err error) {
	defer catch(op.id, &err)
	if op.st != nil && op.st.reuse && op.out != nil {
		return op.out, nil
	}
	in, err := f32s(op.id, vs, []tensor.Shape{op.xShape()})
	if err != nil {
		return nil, err
	}
	x := in[0]
	out := buffer(&op.out, op.yShape())
	y := out.Float32s()
	if len(op.idx) != len(y) {
		op.idx = make([]int32, len(y))
	}
	if op.k == 2 {
		// Branch-free (the compares of a max-pool are as unpredictable
		// as coin flips: branches on them cost more than the rest of the
		// op), with the results of the loop below.
		vec.MaxPool2(y, op.idx, x, op.n*op.c, op.h, op.w, 0)
		return out, nil
	}
	o := 0
	for p := 0; p < op.n*op.c; p++ {
		base := p * op.h * op.w
		for oy := 0; oy < op.oh; oy++ {
			for ox := 0; ox < op.ow; ox++ {
				best := base + oy*op.k*op.w + ox*op.k
				bv := x[best]
				for ky := 0; ky < op.k; ky++ {
					row := base + (oy*op.k+ky)*op.w + ox*op.k
					for kx := 0; kx < op.k; kx++ {
						if e := x[row+kx]; e > bv || e != e {
							best, bv = row+kx, e
						}
					}
				}
				y[o], op.idx[o] = bv, int32(best)
				o++
			}
		}
	}
	return out, nil
}

// DiffWRT is true for x.
func (op *maxPoolOp) DiffWRT(int) []bool { return []bool{true} }

// SymDiff returns the node dx = maxPoolGrad(x, dy).
func (op *maxPoolOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dx, err := G.ApplyOp(&maxPoolGradOp{opBase: newBase("maxpool.dx", op.id), fwd: op}, inputs[0], grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx}, nil
}

// DoDiff adds dx into x's dual value.
func (op *maxPoolOp) DoDiff(ctx G.ExecutionContext, inputs G.Nodes, output *G.Node) error {
	gy, err := outGrad(output)
	if err != nil {
		return err
	}
	dx, err := (&maxPoolGradOp{opBase: newBase("maxpool.dx", op.id), fwd: op}).Do(inputs[0].Value(), gy)
	if err != nil {
		return err
	}
	return addGrad(inputs[0], dx.(*tensor.Dense).Float32s())
}

// maxPoolGradOp routes each output's gradient to the input position that
// was its maximum in the forward run. Inputs x (for its shape) and dy.
type maxPoolGradOp struct {
	opBase
	fwd *maxPoolOp
	out *tensor.Dense
}

func (op *maxPoolGradOp) Arity() int    { return 2 }
func (op *maxPoolGradOp) Type() hm.Type { return fnType(4, 4, 4) }
func (op *maxPoolGradOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	f := op.fwd
	return inferShapes(op.id, ds, []tensor.Shape{f.xShape(), f.yShape()}, f.xShape())
}

func (op *maxPoolGradOp) Do(vs ...G.Value) (v G.Value, err error) {
	defer catch(op.id, &err)
	f := op.fwd
	in, err := f32s(op.id, vs, []tensor.Shape{f.xShape(), f.yShape()})
	if err != nil {
		return nil, err
	}
	dy := in[1]
	if len(f.idx) != len(dy) {
		return nil, fmt.Errorf("%s: the forward op has not run", op.id)
	}
	out := buffer(&op.out, f.xShape())
	dx := out.Float32s()
	if f.k == 2 {
		// The windows do not overlap: write each one whole, rather than
		// clear dx and scatter.
		vec.MaxPool2Grad(dx, dy, f.idx, f.n*f.c, f.h, f.w, 0)
		return out, nil
	}
	clear(dx)
	for o, g := range dy {
		dx[f.idx[o]] += g
	}
	return out, nil
}

// gapOp is the global average pool: N×C×H×W → N×C, the mean of each
// channel (PyTorch's AdaptiveAvgPool2d(1) then Flatten).
//
// gorgonia's GlobalAveragePool2D has no gradient (it implements neither
// SymDiff nor DoDiff), reads every value through Tensor.At (an interface
// conversion per value) and returns N×C×1×1.
type gapOp struct {
	opBase
	st         *runState
	n, c, h, w int
	out        *tensor.Dense
}

func newGAPOp(name string, st *runState, n, c, h, w int) *gapOp {
	return &gapOp{opBase: newBase("gap", name), st: st, n: n, c: c, h: h, w: w}
}

func (op *gapOp) xShape() tensor.Shape { return tensor.Shape{op.n, op.c, op.h, op.w} }
func (op *gapOp) yShape() tensor.Shape { return tensor.Shape{op.n, op.c} }

// Arity is 1.
func (op *gapOp) Arity() int { return 1 }

// Type is Tensor-4 a → Tensor-2 a.
func (op *gapOp) Type() hm.Type { return fnType(4, 2) }

// InferShape checks x and returns N×C.
func (op *gapOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	return inferShapes(op.id, ds, []tensor.Shape{op.xShape()}, op.yShape())
}

// Do averages x into the op's output buffer.
func (op *gapOp) Do(vs ...G.Value) (v G.Value, err error) {
	defer catch(op.id, &err)
	if op.st != nil && op.st.reuse && op.out != nil {
		return op.out, nil
	}
	in, err := f32s(op.id, vs, []tensor.Shape{op.xShape()})
	if err != nil {
		return nil, err
	}
	x := in[0]
	out := buffer(&op.out, op.yShape())
	y := out.Float32s()
	hw := op.h * op.w
	for p := range y {
		var s float32
		for _, e := range x[p*hw : (p+1)*hw] {
			s += e
		}
		y[p] = s / float32(hw)
	}
	return out, nil
}

// DiffWRT is true for x.
func (op *gapOp) DiffWRT(int) []bool { return []bool{true} }

// SymDiff returns the node dx = gapGrad(x, dy).
func (op *gapOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dx, err := G.ApplyOp(&gapGradOp{opBase: newBase("gap.dx", op.id), fwd: op}, inputs[0], grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx}, nil
}

// DoDiff adds dx into x's dual value.
func (op *gapOp) DoDiff(ctx G.ExecutionContext, inputs G.Nodes, output *G.Node) error {
	gy, err := outGrad(output)
	if err != nil {
		return err
	}
	dx, err := (&gapGradOp{opBase: newBase("gap.dx", op.id), fwd: op}).Do(inputs[0].Value(), gy)
	if err != nil {
		return err
	}
	return addGrad(inputs[0], dx.(*tensor.Dense).Float32s())
}

// gapGradOp spreads each dy evenly over its channel: dx = dy/(H·W).
// Inputs x (for its shape) and dy.
type gapGradOp struct {
	opBase
	fwd *gapOp
	out *tensor.Dense
}

func (op *gapGradOp) Arity() int    { return 2 }
func (op *gapGradOp) Type() hm.Type { return fnType(4, 2, 4) }
func (op *gapGradOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	f := op.fwd
	return inferShapes(op.id, ds, []tensor.Shape{f.xShape(), f.yShape()}, f.xShape())
}

func (op *gapGradOp) Do(vs ...G.Value) (v G.Value, err error) {
	defer catch(op.id, &err)
	f := op.fwd
	in, err := f32s(op.id, vs, []tensor.Shape{f.xShape(), f.yShape()})
	if err != nil {
		return nil, err
	}
	dy := in[1]
	out := buffer(&op.out, f.xShape())
	dx := out.Float32s()
	hw := f.h * f.w
	for p, g := range dy {
		g /= float32(hw)
		d := dx[p*hw : (p+1)*hw]
		for j := range d {
			d[j] = g
		}
	}
	return out, nil
}
