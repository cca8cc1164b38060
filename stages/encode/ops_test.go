package encode

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// opCase is one op under test: its inputs' shapes and how to apply it.
type opCase struct {
	name   string
	shapes [][]int
	// apply builds the op's node on the input nodes.
	apply func(st *runState, in G.Nodes) (*G.Node, error)
	// init fills the inputs (random normal when nil).
	init func(rng *rand.Rand, in [][]float32)
	// train is the BatchNorm mode of the runs.
	train bool
}

func randn(rng *rand.Rand, d []float32) {
	for i := range d {
		d[i] = float32(rng.NormFloat64())
	}
}

// opGraph is a graph of one op and the objective sum(out ⊙ r), with
// gradients for every input.
type opGraph struct {
	g      *G.ExprGraph
	st     *runState
	in     []*tensor.Dense
	out    *G.Node
	r      []float32
	grads  G.Nodes
	vm     G.VM
	inputs G.Nodes
}

func newOpGraph(t *testing.T, c opCase, rng *rand.Rand) *opGraph {
	t.Helper()
	o := &opGraph{g: G.NewGraph(), st: &runState{train: c.train}}
	vals := make([][]float32, len(c.shapes))
	for i, s := range c.shapes {
		d := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(s...))
		o.in = append(o.in, d)
		vals[i] = d.Float32s()
		o.inputs = append(o.inputs, G.NewTensor(o.g, tensor.Float32, len(s), G.WithShape(s...), G.WithName(fmt.Sprint("in", i)), G.WithValue(d)))
	}
	if c.init != nil {
		c.init(rng, vals)
	} else {
		for _, v := range vals {
			randn(rng, v)
		}
	}
	var err error
	if o.out, err = c.apply(o.st, o.inputs); err != nil {
		t.Fatal(err)
	}
	rt := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(o.out.Shape()...))
	o.r = rt.Float32s()
	randn(rng, o.r)
	rn := G.NewTensor(o.g, tensor.Float32, o.out.Dims(), G.WithShape(o.out.Shape()...), G.WithName("r"), G.WithValue(rt))
	if o.grads, err = G.Backpropagate(G.Nodes{o.out}, G.Nodes{rn}, o.inputs); err != nil {
		t.Fatal(err)
	}
	o.vm = G.NewTapeMachine(o.g)
	t.Cleanup(func() { o.vm.Close() })
	return o
}

// run runs the graph and returns the objective.
func (o *opGraph) run(t *testing.T) float64 {
	t.Helper()
	o.vm.Reset()
	if err := o.vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	out, err := valueF32(o.out.Value())
	if err != nil {
		t.Fatal(err)
	}
	var s float64
	for i, e := range out {
		s += float64(e) * float64(o.r[i])
	}
	return s
}

// checkGrads compares the analytic gradients (SymDiff, tape machine) with
// central differences of the objective.
func checkGrads(t *testing.T, c opCase, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	o := newOpGraph(t, c, rng)
	o.run(t)
	analytic := make([][]float32, len(o.grads))
	for i, gn := range o.grads {
		d, err := valueF32(gn.Value())
		if err != nil {
			t.Fatal(err)
		}
		analytic[i] = append([]float32(nil), d...)
	}
	const eps = 1e-2
	for i, in := range o.in {
		x := in.Float32s()
		var worst, scale float64
		for j := range x {
			keep := x[j]
			x[j] = keep + eps
			up := o.run(t)
			x[j] = keep - eps
			down := o.run(t)
			x[j] = keep
			fd := (up - down) / (2 * eps)
			worst = math.Max(worst, math.Abs(fd-float64(analytic[i][j])))
			scale = math.Max(scale, math.Abs(fd))
		}
		rel := worst / math.Max(scale, 1e-6)
		t.Logf("input %d %v: max |analytic − numeric| = %.2e, relative %.2e", i, c.shapes[i], worst, rel)
		if rel > 5e-3 {
			t.Errorf("input %d: gradient off by %.3g relative to %.3g", i, rel, scale)
		}
	}
}

func convCase(n, c, h, w, o, k, s, p int) opCase {
	return opCase{
		name:   fmt.Sprintf("conv n%d c%d %dx%d o%d k%d s%d p%d", n, c, h, w, o, k, s, p),
		shapes: [][]int{{n, c, h, w}, {o, c, k, k}},
		apply: func(st *runState, in G.Nodes) (*G.Node, error) {
			geo, err := newConvGeom(n, c, h, w, o, k, s, p)
			if err != nil {
				return nil, err
			}
			return G.ApplyOp(newConvOp("test", st, geo), in[0], in[1])
		},
	}
}

// bnCase is BatchNorm on n×c×h×w inputs. With a ReLU, the inputs are drawn
// again until no pre-activation is within 0.05 of the kink, so that the
// central differences do not straddle it.
func bnCase(n, c, h, w int, relu, train bool) opCase {
	runMean, runVar := make([]float32, c), make([]float32, c)
	for i := range runVar {
		runMean[i], runVar[i] = 0.3*float32(i%3)-0.2, 0.5+0.25*float32(i%4)
	}
	return opCase{
		name:   fmt.Sprintf("batchnorm n%d c%d %dx%d relu=%v train=%v", n, c, h, w, relu, train),
		shapes: [][]int{{n, c, h, w}, {c}, {c}},
		train:  train,
		apply: func(st *runState, in G.Nodes) (*G.Node, error) {
			return G.ApplyOp(newBatchNormOp("test", st, n, c, h, w, relu, runMean, runVar), in[0], in[1], in[2])
		},
		init: func(rng *rand.Rand, in [][]float32) {
			for {
				for _, v := range in {
					randn(rng, v)
				}
				if !relu || minAbsPreact(in, n, c, h*w, train, runMean, runVar) > 0.05 {
					return
				}
			}
		},
	}
}

// minAbsPreact is the smallest |γ·x̂+β| of a BatchNorm.
func minAbsPreact(in [][]float32, n, c, hw int, train bool, runMean, runVar []float32) float64 {
	x, g, b := in[0], in[1], in[2]
	best := math.Inf(1)
	for ch := 0; ch < c; ch++ {
		mean, v := float64(runMean[ch]), float64(runVar[ch])
		if train {
			var s, ss float64
			for i := 0; i < n; i++ {
				for _, e := range x[(i*c+ch)*hw : (i*c+ch+1)*hw] {
					s += float64(e)
				}
			}
			mean = s / float64(n*hw)
			for i := 0; i < n; i++ {
				for _, e := range x[(i*c+ch)*hw : (i*c+ch+1)*hw] {
					ss += (float64(e) - mean) * (float64(e) - mean)
				}
			}
			v = ss / float64(n*hw)
		}
		for i := 0; i < n; i++ {
			for _, e := range x[(i*c+ch)*hw : (i*c+ch+1)*hw] {
				z := float64(g[ch])*(float64(e)-mean)/math.Sqrt(v+BNEps) + float64(b[ch])
				best = math.Min(best, math.Abs(z))
			}
		}
	}
	return best
}

func maxPoolCase(n, c, h, w, k int) opCase {
	return opCase{
		name:   fmt.Sprintf("maxpool n%d c%d %dx%d k%d", n, c, h, w, k),
		shapes: [][]int{{n, c, h, w}},
		apply: func(st *runState, in G.Nodes) (*G.Node, error) {
			op, err := newMaxPoolOp("test", st, n, c, h, w, k)
			if err != nil {
				return nil, err
			}
			return G.ApplyOp(op, in[0])
		},
		// Distinct values 0.1 apart, so that no window has a near tie.
		init: func(rng *rand.Rand, in [][]float32) {
			for i, p := range rng.Perm(len(in[0])) {
				in[0][i] = 0.1*float32(p) - 1
			}
		},
	}
}

func gapCase(n, c, h, w int) opCase {
	return opCase{
		name:   fmt.Sprintf("gap n%d c%d %dx%d", n, c, h, w),
		shapes: [][]int{{n, c, h, w}},
		apply: func(st *runState, in G.Nodes) (*G.Node, error) {
			return G.ApplyOp(newGAPOp("test", st, n, c, h, w), in[0])
		},
	}
}

var opCases = []opCase{
	convCase(2, 2, 5, 6, 3, 3, 1, 1),
	convCase(2, 3, 7, 5, 2, 3, 2, 1),
	convCase(1, 2, 4, 4, 3, 1, 1, 0),
	convCase(2, 1, 6, 6, 2, 3, 1, 0),
	convCase(2, 4, 5, 4, 3, 3, 1, 1), // C·K·K = 36
	convCase(1, 5, 6, 5, 2, 3, 2, 0),
	bnCase(3, 2, 2, 3, false, true),
	bnCase(3, 3, 2, 2, true, true),
	bnCase(2, 3, 2, 2, true, false),
	bnCase(2, 2, 3, 1, false, false),
	maxPoolCase(2, 2, 4, 4, 2),
	maxPoolCase(1, 2, 5, 7, 2),
	gapCase(2, 3, 3, 4),
}

// TestOpGradients checks each op's SymDiff against finite differences.
func TestOpGradients(t *testing.T) {
	for i, c := range opCases {
		t.Run(c.name, func(t *testing.T) { checkGrads(t, c, uint64(i)+1) })
	}
}

// TestOpDoDiff checks each op's DoDiff (gorgonia's Lisp machine) against
// its SymDiff (tape machine).
func TestOpDoDiff(t *testing.T) {
	for i, c := range opCases {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i)+1, 7))
			o := newOpGraph(t, c, rng)
			o.run(t)
			want := make([][]float32, len(o.grads))
			for j, gn := range o.grads {
				d, _ := valueF32(gn.Value())
				want[j] = append([]float32(nil), d...)
			}

			// The same op on the same inputs, differentiated by the Lisp
			// machine through cost = sum(out ⊙ r).
			g := G.NewGraph()
			var in G.Nodes
			for j, d := range o.in {
				in = append(in, G.NewTensor(g, tensor.Float32, d.Dims(), G.WithShape(d.Shape()...), G.WithName(fmt.Sprint("in", j)), G.WithValue(d.Clone().(*tensor.Dense))))
			}
			out, err := c.apply(&runState{train: c.train}, in)
			if err != nil {
				t.Fatal(err)
			}
			rt := tensor.New(tensor.WithShape(out.Shape()...), tensor.WithBacking(append([]float32(nil), o.r...)))
			rn := G.NewTensor(g, tensor.Float32, out.Dims(), G.WithShape(out.Shape()...), G.WithName("r"), G.WithValue(rt))
			cost := G.Must(G.Sum(G.Must(G.HadamardProd(out, rn))))
			vm := G.NewLispMachine(g)
			defer vm.Close()
			if err := vm.RunAll(); err != nil {
				t.Fatal(err)
			}
			_ = cost
			for j, n := range in {
				gv, err := n.Grad()
				if err != nil {
					t.Fatal(err)
				}
				got, err := valueF32(gv)
				if err != nil {
					t.Fatal(err)
				}
				if relErr(want[j], make([]float32, len(want[j]))) == 0 {
					t.Fatalf("input %d: zero gradient, nothing compared", j)
				}
				if e := relErr(got, want[j]); e > 1e-5 {
					t.Errorf("input %d: DoDiff differs from SymDiff by %.3g relative", j, e)
				}
			}
		})
	}
}

// TestIm2ColAdjoint checks that col2im is the adjoint of im2col:
// ⟨im2col(x), c⟩ = ⟨x, col2im(c)⟩.
func TestIm2ColAdjoint(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	for _, g := range []struct{ c, h, w, k, s, p int }{{2, 5, 6, 3, 1, 1}, {3, 7, 5, 3, 2, 1}, {1, 4, 4, 1, 1, 0}, {2, 6, 6, 3, 1, 2}, {1, 3, 3, 3, 1, 3}} {
		geo, err := newConvGeom(1, g.c, g.h, g.w, 1, g.k, g.s, g.p)
		if err != nil {
			t.Fatal(err)
		}
		x := make([]float32, g.c*g.h*g.w)
		c := make([]float32, geo.rows()*geo.cols())
		randn(rng, x)
		randn(rng, c)
		col := make([]float32, len(c))
		geo.im2col(x, col)
		dx := make([]float32, len(x))
		geo.col2im(c, dx)
		var a, b float64
		for i := range c {
			a += float64(col[i]) * float64(c[i])
		}
		for i := range x {
			b += float64(x[i]) * float64(dx[i])
		}
		if math.Abs(a-b) > 1e-4*math.Max(1, math.Abs(a)) {
			t.Errorf("%+v: ⟨im2col x, c⟩ = %g, ⟨x, col2im c⟩ = %g", g, a, b)
		}
	}
}
