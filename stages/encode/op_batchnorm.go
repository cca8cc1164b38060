package encode

import (
	"fmt"
	"math"

	"github.com/chewxy/hm"
	"github.com/contrastream/contrastream/stages/internal/vec"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// batchNormOp is PyTorch's nn.BatchNorm2d, optionally followed by a ReLU
// (fused: one pass, no intermediate tensor): inputs x (N×C×H×W), γ (C) and
// β (C); output y = ReLU(γ·(x−μ)/√(σ²+ε) + β) of x's shape.
//
// In training mode (runState.train) μ and σ² are the per-channel mean and
// biased variance of the op's BatchNorm group: its own N images for a
// replica alone, or every image of the group for the shards of a Pool
// (see bnGroup: the ops of the group's shards meet at a barrier). The
// running statistics move towards them once per group and run (by the
// group that owns them): mean ← (1−m)·mean + m·μ,
// var ← (1−m)·var + m·σ²·M/(M−1), where M is the group's images × H·W and
// m = BNMomentum (the unbiased variance, as PyTorch). In eval mode μ and
// σ² are the running statistics, which stay unchanged, and no op waits for
// another.
//
// gorgonia's BatchNorm cannot be used: with nil scale and bias it creates
// them full-shape (N×C×H×W) rather than per channel, its float32 eval-mode
// backward reads the running variance where it means the mean, it keeps
// the running statistics inside the op where no optimizer or checkpoint
// can name them, and it returns no gradients for scale and bias of its
// own (they are separate broadcast ops, each allocating a full tensor).
type batchNormOp struct {
	opBase
	st       *runState
	shape    tensor.Shape // N×C×H×W
	n, c, hw int
	relu     bool

	// group is what the op shares with the same layer's ops of the other
	// shards of its BatchNorm group (see bnGroup): the per-image sums, the
	// statistics, the running statistics and the barrier. member is this
	// op's shard's place in the group.
	group  *bnGroup
	member int

	// The statistics the last forward run used: batch (the group's) or
	// running.
	batch        bool
	mean, invStd []float32
	out          *tensor.Dense

	// dγ and dβ of this op's shard for the backward run st.gen, their
	// float64 sums, and the group's dγ and dβ for dx.
	dg, db   []float32
	sdg, sdb []float64
	gdg, gdb []float32
	gradGen  uint64
}

// segStat is the statistics of one image's H·W values of one channel.
type segStat struct {
	sum, sqDev float64
	mean       float32
}

// newBatchNormOp returns the BatchNorm of one replica alone: its batch
// statistics are those of its own n images, and it moves runMean and
// runVar (the replica's running statistics) after each training forward
// run.
func newBatchNormOp(name string, st *runState, n, c, h, w int, relu bool, runMean, runVar []float32) *batchNormOp {
	return newGroupBatchNormOp(name, st, n, c, h, w, relu, newBNGroup(nil, 1, n, c, h*w, runMean, runVar, true), 0)
}

// newGroupBatchNormOp returns the BatchNorm of shard member of group g
// (whose shards are of n images).
func newGroupBatchNormOp(name string, st *runState, n, c, h, w int, relu bool, g *bnGroup, member int) *batchNormOp {
	return &batchNormOp{
		opBase: newBase("batchnorm", name), st: st,
		shape: tensor.Shape{n, c, h, w}, n: n, c: c, hw: h * w, relu: relu,
		group: g, member: member,
		mean: make([]float32, c), invStd: make([]float32, c),
		dg: make([]float32, c), db: make([]float32, c),
		sdg: make([]float64, c), sdb: make([]float64, c),
		gdg: make([]float32, c), gdb: make([]float32, c),
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
	g := op.group
	if m := g.images() * op.hw; train && m < 2 {
		return nil, fmt.Errorf("%s: training mode needs more than one value per channel, got %d (a group of %d images × %d positions)", op.id, m, g.images(), op.hw)
	}
	op.batch = train
	if train {
		op.batchStats(x)
		if err := g.wait(g.forwardStats); err != nil {
			return nil, fmt.Errorf("%s: %w", op.id, err)
		}
		copy(op.mean, g.mean)
		copy(op.invStd, g.invStd)
	} else {
		for c := 0; c < op.c; c++ {
			op.mean[c] = g.runMean[c]
			op.invStd[c] = float32(1 / math.Sqrt(float64(g.runVar[c])+g.eps))
		}
	}
	out := buffer(&op.out, op.shape)
	y := out.Float32s()
	for n := 0; n < op.n; n++ {
		for c := 0; c < op.c; c++ {
			i := (n*op.c + c) * op.hw
			a := gamma[c] * op.invStd[c]
			b := beta[c] - op.mean[c]*a
			if op.relu {
				vec.ScaleShiftReLU(y[i:i+op.hw], x[i:i+op.hw], a, b)
			} else {
				vec.ScaleShift(y[i:i+op.hw], x[i:i+op.hw], a, b)
			}
		}
	}
	return out, nil
}

// batchStats fills the op's slots of its group's per-image statistics
// from x in one pass over memory: each image's H·W values of a channel are
// summed, then (while in cache) their squared deviations from their own
// mean.
func (op *batchNormOp) batchStats(x []float32) {
	seg := op.group.segs(op.member)
	for s := range seg {
		xs := x[s*op.hw : (s+1)*op.hw]
		sum := sum(xs)
		m := float32(sum / float64(op.hw))
		seg[s] = segStat{sum: sum, sqDev: sumSqDev(xs, m), mean: m}
	}
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
	dg, db, err := f.paramGrads(in[0], in[1], in[2])
	if err != nil {
		return nil, err
	}
	out := buffer(&op.out, tensor.Shape{f.c})
	if op.what == bnBeta {
		copy(out.Float32s(), db)
	} else {
		copy(out.Float32s(), dg)
	}
	return out, nil
}

// paramGrads returns dγ (Σ dy'·x̂ per channel) and dβ (Σ dy' per channel)
// of the op's shard for x, the output y and dy (dy' is dy masked by the
// fused ReLU, y > 0), from one pass over them in memory order, computed
// once per backward run for the two ops that want them. Each channel's
// sums over the images are added in float64, image by image in order.
// With batch statistics it also sets the group's sums for dx (gdg, gdb):
// the shard's, or for a group of several shards, those of every image of
// the group in the group's order, once all have arrived at its barrier.
func (op *batchNormOp) paramGrads(x, y, dy []float32) (dg, db []float32, err error) {
	if op.st != nil && op.st.gen != 0 && op.st.gen == op.gradGen {
		return op.dg, op.db, nil
	}
	g := op.group
	parts := g.parts(op.member)
	for n := 0; n < op.n; n++ {
		for c := 0; c < op.c; c++ {
			i := (n*op.c + c) * op.hw
			var pg, pb float64
			if op.relu {
				pg, pb = vec.DotDevReLU(y[i:i+op.hw], dy[i:i+op.hw], x[i:i+op.hw], op.mean[c])
			} else {
				pg, pb = dotDev(dy[i:i+op.hw], x[i:i+op.hw], op.mean[c])
			}
			parts[n*op.c+c] = bnPart{pg, pb}
		}
	}
	sumParts(parts, op.n, op.c, op.sdg, op.sdb)
	for c := range op.dg {
		op.dg[c], op.db[c] = float32(op.sdg[c])*op.invStd[c], float32(op.sdb[c])
	}
	switch {
	case !op.batch:
	case g.parties == 1:
		copy(op.gdg, op.dg)
		copy(op.gdb, op.db)
	default:
		if err := g.wait(g.backwardSums); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", op.id, err)
		}
		copy(op.gdg, g.dg)
		copy(op.gdb, g.db)
	}
	if op.st != nil {
		op.gradGen = op.st.gen
	}
	return op.dg, op.db, nil
}

// The sums of BatchNorm, each over one image's H·W values of one channel
// (see package vec for their blocking and rounding).

// sum returns Σx.
func sum(x []float32) float64 { return vec.Sum(x) }

// sumSqDev returns Σ(x−mean)².
func sumSqDev(x []float32, mean float32) float64 { return vec.SumSqDev(x, mean) }

// dotDev returns Σg·(x−mean) and Σg.
func dotDev(g, x []float32, mean float32) (dot, sg float64) { return vec.DotDev(g, x, mean) }

// bnGradInputOp is the gradient of a batchNormOp with respect to x. Inputs
// x, y, dy, γ, dγ, dβ. With batch statistics
// dx = γ/σ · (dy' − dβ/M − x̂·dγ/M), where M counts the values of the
// BatchNorm group (all its shards) and dγ and dβ are the group's sums
// (for a replica alone, its inputs dγ and dβ); with running statistics
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
	x, y, dy, gamma, dg, db := in[0], in[1], in[2], in[3], in[4], in[5]
	if f.group.parties > 1 {
		dg, db = f.gdg, f.gdb // the group's; the inputs are the shard's part
	}
	out := buffer(&op.out, f.shape)
	dx := out.Float32s()
	invM := 1 / float32(f.group.images()*f.hw)
	for n := 0; n < f.n; n++ {
		for c := 0; c < f.c; c++ {
			i := (n*f.c + c) * f.hw
			a := gamma[c] * f.invStd[c]
			xs, ys, g, d := x[i:i+f.hw], y[i:i+f.hw], dy[i:i+f.hw], dx[i:i+f.hw]
			if !f.batch {
				if f.relu {
					reluMask(d, ys, g)
					g = d
				}
				for j, e := range g {
					d[j] = a * e
				}
				continue
			}
			mb, k := db[c]*invM, f.invStd[c]*(dg[c]*invM)
			if f.relu {
				vec.BNGradInputReLU(d, ys, g, xs, a, mb, f.mean[c], k)
			} else {
				vec.BNGradInput(d, g, xs, a, mb, f.mean[c], k)
			}
		}
	}
	return out, nil
}

// reluMask sets m = dy·[y > 0]: dy where y > 0, else +0 (for ±0, a
// negative y and NaN), without a branch per value. The masks of ReLU's
// outputs are as unpredictable as coin flips: a float compare-and-branch
// runs 9 times slower.
func reluMask(m, y, dy []float32) { vec.ReluMask(m, y, dy) }
