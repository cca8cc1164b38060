package encode

import (
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// The Vision Transformer's ops (vit.go) are built from two generic pieces:
// fnOp, an op that is a function of its inputs' float32 values into a
// buffer it owns, and layerOp, a forward fnOp that honours runState.reuse
// and knows its gradients as a list of fnOps (gradSpec). Each layer is a
// constructor that fills in the functions: linear, gelu, add and cls here,
// layerNorm (op_layernorm.go), attention (op_attention.go) and
// patchEmbed (op_patch.go). Every token tensor is a matrix of
// (images·tokens) rows, so that no op needs a reshape or a permute: the
// attention op reads the heads of q, k and v where the qkv Linear wrote
// them (strided matrix products), which is what PyTorch's
// reshape(B, T, 3, H, hd).permute(2, 0, 3, 1, 4) views are.

// fnOp is an op whose output, of shape out, is f of its inputs' values (of
// the shapes in). The output buffer is allocated on the first run and
// reused; f must write every value of it.
type fnOp struct {
	opBase
	in   []tensor.Shape
	outS tensor.Shape
	f    func(in [][]float32, out []float32)
	out  *tensor.Dense
}

func newFnOp(kind, name string, f func(in [][]float32, out []float32), out tensor.Shape, in ...tensor.Shape) *fnOp {
	return &fnOp{opBase: newBase(kind, name), in: in, outS: out, f: f}
}

// Arity is the number of inputs.
func (op *fnOp) Arity() int { return len(op.in) }

// Type is the inputs' tensor types → the output's.
func (op *fnOp) Type() hm.Type {
	dims := make([]int, 0, len(op.in)+1)
	for _, s := range op.in {
		dims = append(dims, s.Dims())
	}
	return fnType(append(dims, op.outS.Dims())...)
}

// InferShape checks the inputs' shapes and returns the output's.
func (op *fnOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	return inferShapes(op.id, ds, op.in, op.outS)
}

// Do computes f into the op's output buffer.
func (op *fnOp) Do(vs ...G.Value) (v G.Value, err error) {
	defer catch(op.id, &err)
	in, err := f32s(op.id, vs, op.in)
	if err != nil {
		return nil, err
	}
	out := buffer(&op.out, op.outS)
	op.f(in, out.Float32s())
	return out, nil
}

// The arguments of a gradient op besides the forward op's inputs (0, 1,
// ...): its output and the output's gradient.
const (
	argOut  = -1
	argGrad = -2
)

// gradSpec is the gradient of a layerOp with respect to one input: the
// op that computes it and its arguments (input indices, argOut, argGrad),
// or, with op nil, the output's gradient itself (args ignored).
type gradSpec struct {
	op   *fnOp
	args []int
}

// layerOp is a forward op of the Vision Transformer: an fnOp whose Do
// returns its last output again when the runState says so (the backward
// program replays the forward part), differentiated by the gradient ops
// grads returns, one per input.
type layerOp struct {
	fnOp
	st    *runState
	grads func() []gradSpec
}

// Do computes the output, or returns the forward program's (reuse).
func (op *layerOp) Do(vs ...G.Value) (G.Value, error) {
	if op.st != nil && op.st.reuse && op.out != nil {
		return op.out, nil
	}
	return op.fnOp.Do(vs...)
}

// DiffWRT is true for every input.
func (op *layerOp) DiffWRT(n int) []bool {
	d := make([]bool, n)
	for i := range d {
		d[i] = true
	}
	return d
}

// SymDiff applies the gradient ops to their arguments' nodes.
func (op *layerOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	specs := op.grads()
	out := make(G.Nodes, len(specs))
	for i, s := range specs {
		if s.op == nil {
			out[i] = grad
			continue
		}
		args := make(G.Nodes, len(s.args))
		for j, a := range s.args {
			switch a {
			case argOut:
				args[j] = output
			case argGrad:
				args[j] = grad
			default:
				args[j] = inputs[a]
			}
		}
		n, err := G.ApplyOp(s.op, args...)
		if err != nil {
			return nil, err
		}
		out[i] = n
	}
	return out, nil
}

// DoDiff runs the gradient ops on the values and adds their results into
// the inputs' dual values.
func (op *layerOp) DoDiff(ctx G.ExecutionContext, inputs G.Nodes, output *G.Node) error {
	gy, err := outGrad(output)
	if err != nil {
		return err
	}
	for i, s := range op.grads() {
		if s.op == nil {
			d, err := valueF32(gy)
			if err != nil {
				return err
			}
			if err := addGrad(inputs[i], d); err != nil {
				return err
			}
			continue
		}
		args := make([]G.Value, len(s.args))
		for j, a := range s.args {
			switch a {
			case argOut:
				args[j] = output.Value()
			case argGrad:
				args[j] = gy
			default:
				args[j] = inputs[a].Value()
			}
		}
		v, err := s.op.Do(args...)
		if err != nil {
			return err
		}
		if err := addGrad(inputs[i], v.(*tensor.Dense).Float32s()); err != nil {
			return err
		}
	}
	return nil
}

func newLayerOp(kind, name string, st *runState, f func(in [][]float32, out []float32), out tensor.Shape, in ...tensor.Shape) *layerOp {
	return &layerOp{fnOp: fnOp{opBase: newBase(kind, name), in: in, outS: out, f: f}, st: st}
}

// colSum writes the column sums of the rows×cols matrix x into s,
// accumulating in float64.
func colSum(x []float32, rows, cols int, s []float32, acc *[]float64) {
	a := scratch64(acc, cols)
	clear(a)
	for r := 0; r < rows; r++ {
		for j, e := range x[r*cols : (r+1)*cols] {
			a[j] += float64(e)
		}
	}
	for j, e := range a {
		s[j] = float32(e)
	}
}

// scratch64 is scratch for float64 values.
func scratch64(s *[]float64, n int) []float64 {
	if cap(*s) < n {
		*s = make([]float64, n)
	}
	return (*s)[:n]
}

// newLinear is PyTorch's nn.Linear on the rows of x: inputs x (m×k),
// W (o×k) and b (o); output y = x·Wᵀ + b (m×o). Gradients: dx = dy·W,
// dW = dyᵀ·x, db = Σ_rows dy, each one SGEMM (or a column sum).
func newLinear(name string, st *runState, m, k, o int) *layerOp {
	x, w, b, y := tensor.Shape{m, k}, tensor.Shape{o, k}, tensor.Shape{o}, tensor.Shape{m, o}
	op := newLayerOp("linear", name, st, func(in [][]float32, out []float32) {
		sgemm(false, true, m, o, k, 1, in[0], k, in[1], k, 0, out, o)
		bias := in[2]
		for r := 0; r < m; r++ {
			row := out[r*o : (r+1)*o]
			for j := range row {
				row[j] += bias[j]
			}
		}
	}, y, x, w, b)
	op.grads = func() []gradSpec {
		var acc []float64
		return []gradSpec{
			{newFnOp("linear.dx", name, func(in [][]float32, dx []float32) {
				sgemm(false, false, m, k, o, 1, in[1], o, in[0], k, 0, dx, k)
			}, x, w, y), []int{1, argGrad}},
			{newFnOp("linear.dw", name, func(in [][]float32, dw []float32) {
				sgemm(true, false, o, k, m, 1, in[1], o, in[0], k, 0, dw, k)
			}, w, x, y), []int{0, argGrad}},
			{newFnOp("linear.db", name, func(in [][]float32, db []float32) {
				colSum(in[0], m, o, db, &acc)
			}, b, y), []int{argGrad}},
		}
	}
	return op
}

// newReLU is PyTorch's nn.ReLU on an m×k matrix: y = max(x, 0), and
// dx = dy where x > 0, else 0 (PyTorch's gradient at exactly 0 is 0).
func newReLU(name string, st *runState, m, k int) *layerOp {
	s := tensor.Shape{m, k}
	op := newLayerOp("relu", name, st, func(in [][]float32, out []float32) {
		for i, x := range in[0] {
			out[i] = max(x, 0)
		}
	}, s, s)
	op.grads = func() []gradSpec {
		return []gradSpec{{newFnOp("relu.dx", name, func(in [][]float32, dx []float32) {
			x := in[0]
			for i, g := range in[1] {
				if x[i] > 0 {
					dx[i] = g
				} else {
					dx[i] = 0
				}
			}
		}, s, s, s), []int{0, argGrad}}}
	}
	return op
}

// newGELU is PyTorch's exact nn.GELU (approximate='none'),
// y = x·Φ(x) = x/2·(1 + erf(x/√2)), on an m×k matrix. The forward pass
// keeps Φ(x) for the gradient dx = dy·(Φ(x) + x·φ(x)), so that each pass
// evaluates one transcendental function per value (erf forward, exp
// backward).
func newGELU(name string, st *runState, m, k int) *layerOp {
	s := tensor.Shape{m, k}
	cdf := make([]float32, m*k)
	op := newLayerOp("gelu", name, st, func(in [][]float32, out []float32) {
		for i, e := range in[0] {
			x := float64(e)
			c := 0.5 * (1 + math.Erf(x/math.Sqrt2))
			out[i] = float32(x * c)
			cdf[i] = float32(c)
		}
	}, s, s)
	op.grads = func() []gradSpec {
		return []gradSpec{{newFnOp("gelu.dx", name, func(in [][]float32, dx []float32) {
			const invSqrt2Pi = 0.3989422804014327
			x := in[0]
			for i, g := range in[1] {
				e := float64(x[i])
				dx[i] = g * float32(float64(cdf[i])+e*math.Exp(-0.5*e*e)*invSqrt2Pi)
			}
		}, s, s, s), []int{0, argGrad}}}
	}
	return op
}

// newAdd is the residual sum y = a + b of two m×d matrices; the gradient
// of each is dy itself.
//
// gorgonia's Add is not used: it declares that it overwrites its first
// input, which the replayed forward values (runState.reuse) cannot allow
// (see residualOp).
func newAdd(name string, st *runState, m, d int) *layerOp {
	s := tensor.Shape{m, d}
	op := newLayerOp("add", name, st, func(in [][]float32, out []float32) {
		a, b := in[0], in[1]
		for i := range out {
			out[i] = a[i] + b[i]
		}
	}, s, s, s)
	op.grads = func() []gradSpec { return []gradSpec{{}, {}} }
	return op
}

// newCLS takes the class token of each image: x is (n·t)×d, row i·t the
// class token of image i; y is n×d. The gradient is dy in the class
// tokens' rows, 0 elsewhere.
func newCLS(name string, st *runState, n, t, d int) *layerOp {
	x, y := tensor.Shape{n * t, d}, tensor.Shape{n, d}
	op := newLayerOp("cls", name, st, func(in [][]float32, out []float32) {
		for i := 0; i < n; i++ {
			copy(out[i*d:(i+1)*d], in[0][i*t*d:(i*t+1)*d])
		}
	}, y, x)
	op.grads = func() []gradSpec {
		return []gradSpec{{newFnOp("cls.dx", name, func(in [][]float32, dx []float32) {
			clear(dx)
			for i := 0; i < n; i++ {
				copy(dx[i*t*d:(i*t+1)*d], in[0][i*d:(i+1)*d])
			}
		}, x, y), []int{argGrad}}}
	}
	return op
}
