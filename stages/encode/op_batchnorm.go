package encode

import (
	"fmt"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// batchNormOp is PyTorch's nn.BatchNorm2d, optionally followed by a ReLU
// (fused: one pass, no intermediate tensor): inputs x (N×C×H×W), γ (C) and
// β (C); output y = ReLU(γ·(x−μ)/√(σ²+ε) + β) of x's shape.
//
// In training mode (runState.train) μ and σ² are the batch's per-channel
// mean and biased variance, and the running statistics move towards them:
// mean ← (1−m)·mean + m·μ, var ← (1−m)·var + m·σ²·M/(M−1), where M =
// N·H·W and m = BNMomentum (the unbiased variance, as PyTorch). In eval
// mode μ and σ² are the running statistics, which stay unchanged.
//
// gorgonia's BatchNorm cannot be used: with nil scale and bias it creates
// them full-shape (N×C×H×W) rather than per channel, its float32 eval-mode
// backward reads the running variance where it means the mean, it keeps
// the running statistics inside the op where no optimizer or checkpoint
// can name them, and it returns no gradients for scale and bias of its
// own (they are separate broadcast ops, each allocating a full tensor).
type batchNormOp struct {
	opBase
	st              *runState
	shape           tensor.Shape // N×C×H×W
	n, c, hw        int
	relu            bool
	momentum, eps   float64
	runMean, runVar []float32 // the running statistics, updated in place

	// The statistics the last forward run used: batch or running.
	batch        bool
	mean, invStd []float32
	out          *tensor.Dense

	// dy masked by the ReLU, for the backward run st.gen.
	masked  []float32
	maskGen uint64
	// dγ and dβ for the backward run st.gen.
	dg, db  []float32
	gradGen uint64
}

func newBatchNormOp(name string, st *runState, n, c, h, w int, relu bool, runMean, runVar []float32) *batchNormOp {
	return &batchNormOp{
		opBase: newBase("batchnorm", name), st: st,
		shape: tensor.Shape{n, c, h, w}, n: n, c: c, hw: h * w, relu: relu,
		momentum: BNMomentum, eps: BNEps, runMean: runMean, runVar: runVar,
		mean: make([]float32, c), invStd: make([]float32, c),
	}
}

// Arity is 3: x, γ, β.
func (op *batchNormOp) Arity() int { return 3 }

// Type is Tensor-4 a → Tensor-1 a → Tensor-1 a → Tensor-4 a.
func (op *batchNormOp) Type() hm.Type { return fnType(4, 1, 1, 4) }

func (op *batchNormOp) shapes() []tensor.Shape {
	return []tensor.Shape{op.shape, {op.c}, {op.c}}
}

// InferShape checks the inputs and returns x's shape.
func (op *batchNormOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	return inferShapes(op.id, ds, op.shapes(), op.shape)
}

// Do normalises x into the op's output buffer.
func (op *batchNormOp) Do(vs ...G.Value) (v G.Value, err error) {
	defer catch(op.id, &err)
	if op.st != nil && op.st.reuse && op.out != nil {
		return op.out, nil
	}
	in, err := f32s(op.id, vs, op.shapes())
	if err != nil {
		return nil, err
	}
	x, gamma, beta := in[0], in[1], in[2]
	train := op.st == nil || op.st.train
	m := op.n * op.hw
	if train && m < 2 {
		return nil, fmt.Errorf("%s: training mode needs more than one value per channel, got %d (shard %d × %d positions)", op.id, m, op.n, op.hw)
	}
	op.batch = train
	for c := 0; c < op.c; c++ {
		var mean, v float64
		if train {
			var s float64
			for n := 0; n < op.n; n++ {
				s += sum(x[(n*op.c+c)*op.hw : (n*op.c+c+1)*op.hw])
			}
			mean = s / float64(m)
			var ss float64
			for n := 0; n < op.n; n++ {
				ss += sumSqDev(x[(n*op.c+c)*op.hw:(n*op.c+c+1)*op.hw], float32(mean))
			}
			v = ss / float64(m)
			op.runMean[c] = float32((1-op.momentum)*float64(op.runMean[c]) + op.momentum*mean)
			op.runVar[c] = float32((1-op.momentum)*float64(op.runVar[c]) + op.momentum*ss/float64(m-1))
		} else {
			mean, v = float64(op.runMean[c]), float64(op.runVar[c])
		}
		op.mean[c] = float32(mean)
		op.invStd[c] = float32(1 / math.Sqrt(v+op.eps))
	}
	out := buffer(&op.out, op.shape)
	y := out.Float32s()
	for n := 0; n < op.n; n++ {
		for c := 0; c < op.c; c++ {
			i := (n*op.c + c) * op.hw
			a := gamma[c] * op.invStd[c]
			b := beta[c] - op.mean[c]*a
			xs, ys := x[i:i+op.hw], y[i:i+op.hw]
			if op.relu {
				for j, e := range xs {
					ys[j] = max(e*a+b, 0)
				}
			} else {
				for j, e := range xs {
					ys[j] = e*a + b
				}
			}
		}
	}
	return out, nil
}

// DiffWRT is true for x, γ and β.
func (op *batchNormOp) DiffWRT(int) []bool { return []bool{true, true, true} }

// SymDiff returns the nodes dγ = bnGradGamma(x, y, dy),
// dβ = bnGradBeta(y, dy) and dx = bnGradInput(x, y, dy, γ, dγ, dβ).
func (op *batchNormOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	x, gamma := inputs[0], inputs[1]
	dg, err := G.ApplyOp(&bnGradOp{opBase: newBase("batchnorm.dgamma", op.id), fwd: op, what: bnGamma}, x, output, grad)
	if err != nil {
		return nil, err
	}
	db, err := G.ApplyOp(&bnGradOp{opBase: newBase("batchnorm.dbeta", op.id), fwd: op, what: bnBeta}, x, output, grad)
	if err != nil {
		return nil, err
	}
	dx, err := G.ApplyOp(&bnGradInputOp{opBase: newBase("batchnorm.dx", op.id), fwd: op}, x, output, grad, gamma, dg, db)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx, dg, db}, nil
}

// DoDiff adds dx, dγ and dβ into the inputs' dual values.
func (op *batchNormOp) DoDiff(ctx G.ExecutionContext, inputs G.Nodes, output *G.Node) error {
	gy, err := outGrad(output)
	if err != nil {
		return err
	}
	x, gamma := inputs[0].Value(), inputs[1].Value()
	y := output.Value()
	dg, err := (&bnGradOp{opBase: newBase("batchnorm.dgamma", op.id), fwd: op, what: bnGamma}).Do(x, y, gy)
	if err != nil {
		return err
	}
	db, err := (&bnGradOp{opBase: newBase("batchnorm.dbeta", op.id), fwd: op, what: bnBeta}).Do(x, y, gy)
	if err != nil {
		return err
	}
	dx, err := (&bnGradInputOp{opBase: newBase("batchnorm.dx", op.id), fwd: op}).Do(x, y, gy, gamma, dg, db)
	if err != nil {
		return err
	}
	for i, d := range []G.Value{dx, dg, db} {
		if err := addGrad(inputs[i], d.(*tensor.Dense).Float32s()); err != nil {
			return err
		}
	}
	return nil
}

// maskedDy returns dy' = dy·[y > 0] after a fused ReLU (dy itself
// without one). Within one backward run (runState.gen ≠ 0) it is computed
// once, for the three gradient ops.
func (op *batchNormOp) maskedDy(y, dy []float32) []float32 {
	if !op.relu {
		return dy
	}
	if op.st != nil && op.st.gen != 0 && op.st.gen == op.maskGen && len(op.masked) == len(dy) {
		return op.masked
	}
	m := scratch(&op.masked, len(dy))
	reluMask(m, y, dy)
	if op.st != nil {
		op.maskGen = op.st.gen
	}
	return m
}

const (
	bnGamma = iota
	bnBeta
)

// bnGradOp is the gradient of a batchNormOp with respect to γ
// (Σ dy'·x̂ per channel) or β (Σ dy' per channel), where dy' is dy masked
// by the fused ReLU and x̂ = (x−μ)/σ with the statistics of the forward
// run. Inputs: x, y, dy.
type bnGradOp struct {
	opBase
	fwd  *batchNormOp
	what int
	out  *tensor.Dense
}

func (op *bnGradOp) Arity() int    { return 3 }
func (op *bnGradOp) Type() hm.Type { return fnType(4, 4, 4, 1) }
func (op *bnGradOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	s := op.fwd.shape
	return inferShapes(op.id, ds, []tensor.Shape{s, s, s}, tensor.Shape{op.fwd.c})
}

func (op *bnGradOp) Do(vs ...G.Value) (v G.Value, err error) {
	defer catch(op.id, &err)
	f := op.fwd
	in, err := f32s(op.id, vs, []tensor.Shape{f.shape, f.shape, f.shape})
	if err != nil {
		return nil, err
	}
	dg, db := f.paramGrads(in[0], f.maskedDy(in[1], in[2]))
	out := buffer(&op.out, tensor.Shape{f.c})
	if op.what == bnBeta {
		copy(out.Float32s(), db)
	} else {
		copy(out.Float32s(), dg)
	}
	return out, nil
}

// paramGrads returns dγ (Σ dy'·x̂ per channel) and dβ (Σ dy' per channel)
// for x and the masked dy', both from one pass over them, computed once
// per backward run for the two ops that want them.
func (op *batchNormOp) paramGrads(x, dy []float32) (dg, db []float32) {
	if op.st != nil && op.st.gen != 0 && op.st.gen == op.gradGen && len(op.dg) == op.c {
		return op.dg, op.db
	}
	dg, db = scratch(&op.dg, op.c), scratch(&op.db, op.c)
	for c := 0; c < op.c; c++ {
		var sg, sb float64
		mean := op.mean[c]
		for n := 0; n < op.n; n++ {
			i := (n*op.c + c) * op.hw
			g, b := dotDev(dy[i:i+op.hw], x[i:i+op.hw], mean)
			sg += g
			sb += b
		}
		dg[c], db[c] = float32(sg)*op.invStd[c], float32(sb)
	}
	if op.st != nil {
		op.gradGen = op.st.gen
	}
	return dg, db
}

// The per-channel sums of BatchNorm, each over one image's H·W values of
// one channel. Each sums blocks of up to sumBlock values in float32 with
// four accumulators (a single accumulator waits out the latency of every
// add: four times slower) and adds the blocks in float64.
const sumBlock = 1024

// sum returns Σx.
func sum(x []float32) float64 {
	var s float64
	for len(x) > 0 {
		b := x[:min(len(x), sumBlock)]
		x = x[len(b):]
		var s0, s1, s2, s3 float32
		for len(b) >= 4 {
			s0 += b[0]
			s1 += b[1]
			s2 += b[2]
			s3 += b[3]
			b = b[4:]
		}
		for _, e := range b {
			s0 += e
		}
		s += float64((s0 + s1) + (s2 + s3))
	}
	return s
}

// sumSqDev returns Σ(x−mean)².
func sumSqDev(x []float32, mean float32) float64 {
	var s float64
	for len(x) > 0 {
		b := x[:min(len(x), sumBlock)]
		x = x[len(b):]
		var s0, s1, s2, s3 float32
		for len(b) >= 4 {
			d0, d1, d2, d3 := b[0]-mean, b[1]-mean, b[2]-mean, b[3]-mean
			s0 += d0 * d0
			s1 += d1 * d1
			s2 += d2 * d2
			s3 += d3 * d3
			b = b[4:]
		}
		for _, e := range b {
			s0 += (e - mean) * (e - mean)
		}
		s += float64((s0 + s1) + (s2 + s3))
	}
	return s
}

// dotDev returns Σg·(x−mean) and Σg.
func dotDev(g, x []float32, mean float32) (dot, sg float64) {
	x = x[:len(g)]
	for len(g) > 0 {
		n := min(len(g), sumBlock)
		b, xb := g[:n], x[:n]
		g, x = g[n:], x[n:]
		var d0, d1, d2, d3, t0, t1, t2, t3 float32
		for len(b) >= 4 && len(xb) >= 4 {
			d0 += b[0] * (xb[0] - mean)
			d1 += b[1] * (xb[1] - mean)
			d2 += b[2] * (xb[2] - mean)
			d3 += b[3] * (xb[3] - mean)
			t0 += b[0]
			t1 += b[1]
			t2 += b[2]
			t3 += b[3]
			b, xb = b[4:], xb[4:]
		}
		for j, e := range b {
			d0 += e * (xb[j] - mean)
			t0 += e
		}
		dot += float64((d0 + d1) + (d2 + d3))
		sg += float64((t0 + t1) + (t2 + t3))
	}
	return dot, sg
}

// bnGradInputOp is the gradient of a batchNormOp with respect to x. Inputs
// x, y, dy, γ, dγ, dβ. With batch statistics
// dx = γ/σ · (dy' − dβ/M − x̂·dγ/M); with running statistics
// dx = γ/σ · dy'.
type bnGradInputOp struct {
	opBase
	fwd *batchNormOp
	out *tensor.Dense
}

func (op *bnGradInputOp) Arity() int    { return 6 }
func (op *bnGradInputOp) Type() hm.Type { return fnType(4, 4, 4, 1, 1, 1, 4) }
func (op *bnGradInputOp) shapes() []tensor.Shape {
	s, c := op.fwd.shape, tensor.Shape{op.fwd.c}
	return []tensor.Shape{s, s, s, c, c, c}
}
func (op *bnGradInputOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	return inferShapes(op.id, ds, op.shapes(), op.fwd.shape)
}

func (op *bnGradInputOp) Do(vs ...G.Value) (v G.Value, err error) {
	defer catch(op.id, &err)
	f := op.fwd
	in, err := f32s(op.id, vs, op.shapes())
	if err != nil {
		return nil, err
	}
	x, dy, gamma, dg, db := in[0], f.maskedDy(in[1], in[2]), in[3], in[4], in[5]
	out := buffer(&op.out, f.shape)
	dx := out.Float32s()
	invM := 1 / float32(f.n*f.hw)
	for n := 0; n < f.n; n++ {
		for c := 0; c < f.c; c++ {
			i := (n*f.c + c) * f.hw
			g := dy[i : i+f.hw]
			a := gamma[c] * f.invStd[c]
			d := dx[i : i+f.hw]
			if !f.batch {
				for j, e := range g {
					d[j] = a * e
				}
				continue
			}
			mean, inv := f.mean[c], f.invStd[c]
			mb, mg := db[c]*invM, dg[c]*invM
			for j, e := range x[i : i+f.hw] {
				d[j] = a * (g[j] - mb - (e-mean)*inv*mg)
			}
		}
	}
	return out, nil
}

// reluMask sets m = dy·[y > 0], without a branch per element: y > 0 when
// its bits, as an unsigned number, lie in [1, +Inf] (neither ±0, negative
// nor NaN), and the compiler turns the integer select into a conditional
// move. The masks of ReLU's outputs are as unpredictable as coin flips:
// the float compare-and-branch it replaces ran 9 times slower.
func reluMask(m, y, dy []float32) {
	m, dy = m[:len(y)], dy[:len(y)]
	for j, e := range y {
		u := math.Float32bits(dy[j])
		if math.Float32bits(e)-1 >= 0x7f800000 {
			u = 0
		}
		m[j] = math.Float32frombits(u)
	}
}
