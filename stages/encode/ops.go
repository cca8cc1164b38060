package encode

import (
	"fmt"
	"hash"
	"hash/fnv"
	"runtime/debug"
	"sync/atomic"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// This file holds what the package's gorgonia ops share. Each forward op
// (conv, batchnorm, maxpool, global average pool) implements G.Op, G.SDOp
// (for the tape machine: SymDiff returns nodes of its gradient ops) and
// G.ADOp (for the Lisp machine: DoDiff adds the gradients into the inputs'
// dual values). Ops are float32 only, own their output buffers (allocated
// once, reused every run, so a step allocates nothing in them), and are
// meant for one graph run by one goroutine at a time.

// runState is shared by the ops of one graph; the Replica sets it before
// each run.
type runState struct {
	// train selects batch statistics (BatchNorm) and running-statistics
	// updates; false is eval mode.
	train bool
	// reuse makes forward ops return their last output without computing
	// it again: the backward program replays the forward part of the
	// graph, whose values the forward program already computed.
	reuse bool
	// gen numbers the backward runs from 1, so that gradient ops can share
	// work done once per run; 0 shares nothing.
	gen uint64
}

var opCounter atomic.Uint64

// opBase holds the identity of an op and the methods that are the same for
// all of this package's ops. Every op gets a unique hash, so that gorgonia
// never merges two nodes of distinct ops.
type opBase struct {
	id string
}

func newBase(kind, name string) opBase {
	return opBase{id: fmt.Sprintf("%s#%d(%s)", kind, opCounter.Add(1), name)}
}

// ReturnsPtr is true: the ops return their own buffers.
func (b *opBase) ReturnsPtr() bool { return true }

// CallsExtern is false.
func (b *opBase) CallsExtern() bool { return false }

// OverwritesInput is -1: no op writes into an input.
func (b *opBase) OverwritesInput() int { return -1 }

// WriteHash writes the op's unique id.
func (b *opBase) WriteHash(h hash.Hash) { fmt.Fprint(h, b.id) }

// Hashcode hashes the op's unique id.
func (b *opBase) Hashcode() uint32 {
	h := fnv.New32a()
	b.WriteHash(h)
	return h.Sum32()
}

func (b *opBase) String() string { return b.id }

// tt is a float tensor type of the given dimensions.
func tt(dims int) hm.Type { return G.TensorType{Dims: dims, Of: hm.TypeVariable('a')} }

// fnType is the type of an op from its inputs' and output's dimensions.
func fnType(dims ...int) hm.Type {
	ts := make([]hm.Type, len(dims))
	for i, d := range dims {
		ts[i] = tt(d)
	}
	return hm.NewFnType(ts...)
}

// shapeOf checks that a DimSizer is the shape want.
func shapeOf(op string, d G.DimSizer, want tensor.Shape) error {
	s, ok := d.(tensor.Shape)
	if !ok {
		return fmt.Errorf("%s: input is not a tensor (%v)", op, d)
	}
	if !s.Eq(want) {
		return fmt.Errorf("%s: input has shape %v, want %v", op, s, want)
	}
	return nil
}

// inferShapes checks the inputs' shapes and returns out.
func inferShapes(op string, ds []G.DimSizer, want []tensor.Shape, out tensor.Shape) (tensor.Shape, error) {
	if len(ds) != len(want) {
		return nil, fmt.Errorf("%s: %d inputs, want %d", op, len(ds), len(want))
	}
	for i := range ds {
		if err := shapeOf(op, ds[i], want[i]); err != nil {
			return nil, err
		}
	}
	return out.Clone(), nil
}

// f32s returns the float32 values of the input values, checking their
// shapes. A non-contiguous view is materialised (which allocates).
func f32s(op string, vs []G.Value, want []tensor.Shape) ([][]float32, error) {
	if len(vs) != len(want) {
		return nil, fmt.Errorf("%s: %d inputs, want %d", op, len(vs), len(want))
	}
	out := make([][]float32, len(vs))
	for i, v := range vs {
		d, err := valueF32(v)
		if err != nil {
			return nil, fmt.Errorf("%s: input %d: %w", op, i, err)
		}
		if !v.Shape().Eq(want[i]) {
			return nil, fmt.Errorf("%s: input %d has shape %v, want %v", op, i, v.Shape(), want[i])
		}
		out[i] = d
	}
	return out, nil
}

// valueF32 returns a value's float32 data in row-major order.
func valueF32(v G.Value) ([]float32, error) {
	t, ok := v.(tensor.Tensor)
	if !ok {
		return nil, fmt.Errorf("value %T is not a tensor", v)
	}
	if t.RequiresIterator() {
		if d, ok := t.(*tensor.Dense); ok && d.IsMaterializable() {
			t = d.Materialize()
		} else {
			return nil, fmt.Errorf("value of shape %v is not contiguous", t.Shape())
		}
	}
	d, ok := t.Data().([]float32)
	if !ok {
		return nil, fmt.Errorf("value is %v, not float32", t.Dtype())
	}
	if len(d) != t.Shape().TotalSize() {
		return nil, fmt.Errorf("value of shape %v holds %d values", t.Shape(), len(d))
	}
	return d, nil
}

// buffer returns *d, allocating it with shape s on first use.
func buffer(d **tensor.Dense, s tensor.Shape) *tensor.Dense {
	if *d == nil || !(*d).Shape().Eq(s) {
		*d = tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(s.Clone()...))
	}
	return *d
}

// scratch returns a slice of n values, reusing *s when it is large enough.
func scratch(s *[]float32, n int) []float32 {
	if cap(*s) < n {
		*s = make([]float32, n)
	}
	return (*s)[:n]
}

// catch turns a panic inside an op (from gonum's BLAS, say) into its error:
// the tape machine runs ops on a goroutine of its own, where a panic would
// end the process.
func catch(op string, err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%s: panic: %v\n%s", op, r, debug.Stack())
	}
}

// addGrad adds the values of v into the gradient (dual value) of node n, as
// a DoDiff must.
func addGrad(n *G.Node, v []float32) error {
	g, err := n.Grad()
	if err != nil {
		return err
	}
	d, err := valueF32(g)
	if err != nil {
		return fmt.Errorf("gradient of %v: %w", n, err)
	}
	if len(d) != len(v) {
		return fmt.Errorf("gradient of %v has %d values, want %d", n, len(d), len(v))
	}
	for i := range v {
		d[i] += v[i]
	}
	return nil
}

// nodeValues returns the values of nodes, for DoDiff.
func nodeValues(ns ...*G.Node) []G.Value {
	vs := make([]G.Value, len(ns))
	for i, n := range ns {
		vs[i] = n.Value()
	}
	return vs
}

// outGrad returns the gradient (dual value) of an op's output, for DoDiff.
func outGrad(n *G.Node) (G.Value, error) {
	g, err := n.Grad()
	if err != nil {
		return nil, fmt.Errorf("no gradient for %v: %w", n, err)
	}
	return g, nil
}
