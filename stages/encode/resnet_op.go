package encode

import (
	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// residualOp is the end of a ResNet block, y = ReLU(a + b): inputs a (the
// residual branch) and b (the shortcut), both N×C×H×W; output of their
// shape. Its gradient op gives dy·[y > 0] (PyTorch's ReLU: no gradient at
// exactly 0), which is the gradient of both inputs.
//
// It is the package's own op rather than gorgonia's Add and Rectify, which
// give wrong gradients here. Add declares that it overwrites its first
// input (OverwritesInput 0), and so do the ops Rectify is made of, so the
// tape machine's compiler has them write the sum and then its ReLU into
// the buffer of the residual branch's BatchNorm (bn2), the last reader of
// that value in the forward program. The backward program replays the
// forward part from the ops' buffers (runState.reuse), so it then sees
// ReLU(a+b) where bn2's output was and adds the shortcut again: with Add
// and Rectify, bn2's outputs had no negative value left after a forward
// pass, and TestResNet18FiniteDifferences found gradients off by as much
// as their own size. They would also allocate their outputs every run.
type residualOp struct {
	opBase
	st    *runState
	shape tensor.Shape
	out   *tensor.Dense
}

func newResidualOp(name string, st *runState, n, c, h, w int) *residualOp {
	return &residualOp{opBase: newBase("residual", name), st: st, shape: tensor.Shape{n, c, h, w}}
}

// Arity is 2: a and b.
func (op *residualOp) Arity() int { return 2 }

// Type is Tensor-4 a → Tensor-4 a → Tensor-4 a.
func (op *residualOp) Type() hm.Type { return fnType(4, 4, 4) }

// InferShape checks a and b and returns their shape.
func (op *residualOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	return inferShapes(op.id, ds, []tensor.Shape{op.shape, op.shape}, op.shape)
}

// Do writes ReLU(a + b) into the op's output buffer.
func (op *residualOp) Do(vs ...G.Value) (v G.Value, err error) {
	defer catch(op.id, &err)
	if op.st != nil && op.st.reuse && op.out != nil {
		return op.out, nil
	}
	in, err := f32s(op.id, vs, []tensor.Shape{op.shape, op.shape})
	if err != nil {
		return nil, err
	}
	a, b := in[0], in[1]
	out := buffer(&op.out, op.shape)
	y := out.Float32s()
	b = b[:len(a)]
	y = y[:len(a)]
	for i, e := range a {
		y[i] = max(e+b[i], 0)
	}
	return out, nil
}

// DiffWRT is true for a and b.
func (op *residualOp) DiffWRT(int) []bool { return []bool{true, true} }

// SymDiff returns the node d = residualGrad(y, dy), for both a and b.
func (op *residualOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	d, err := G.ApplyOp(&residualGradOp{opBase: newBase("residual.d", op.id), fwd: op}, output, grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{d, d}, nil
}

// DoDiff adds dy·[y > 0] into the dual values of a and b.
func (op *residualOp) DoDiff(ctx G.ExecutionContext, inputs G.Nodes, output *G.Node) error {
	gy, err := outGrad(output)
	if err != nil {
		return err
	}
	d, err := (&residualGradOp{opBase: newBase("residual.d", op.id), fwd: op}).Do(output.Value(), gy)
	if err != nil {
		return err
	}
	for _, in := range inputs {
		if err := addGrad(in, d.(*tensor.Dense).Float32s()); err != nil {
			return err
		}
	}
	return nil
}

// residualGradOp is the gradient of a residualOp with respect to either
// input: dy where the output y is positive, 0 elsewhere. Inputs y and dy.
type residualGradOp struct {
	opBase
	fwd *residualOp
	out *tensor.Dense
}

func (op *residualGradOp) Arity() int    { return 2 }
func (op *residualGradOp) Type() hm.Type { return fnType(4, 4, 4) }
func (op *residualGradOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	s := op.fwd.shape
	return inferShapes(op.id, ds, []tensor.Shape{s, s}, s)
}

func (op *residualGradOp) Do(vs ...G.Value) (v G.Value, err error) {
	defer catch(op.id, &err)
	s := op.fwd.shape
	in, err := f32s(op.id, vs, []tensor.Shape{s, s})
	if err != nil {
		return nil, err
	}
	y, dy := in[0], in[1]
	out := buffer(&op.out, s)
	d := out.Float32s()
	dy = dy[:len(y)]
	d = d[:len(y)]
	for i, e := range y {
		if e > 0 {
			d[i] = dy[i]
		} else {
			d[i] = 0
		}
	}
	return out, nil
}
