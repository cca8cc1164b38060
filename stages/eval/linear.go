package eval

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"

	"github.com/contrastream/contrastream/pipeline"
)

// The defaults of LinearConfig: the recipe of the PyTorch reference's
// linear_probe_acc (cmd/reference/torch_reference.py), except that it
// runs to convergence rather than for the reference's 300 iterations
// (ReferenceLinearIterations): on a MoCo encoder of full Fashion-MNIST the
// loss still fell from 0.397 at 300 iterations to 0.357 at 1,500, and the
// test top-1 rose from 0.853 to 0.862.
const (
	DefaultLinearLR          = 0.01
	DefaultLinearWeightDecay = 1e-4
	// ReferenceLinearIterations is the reference's fixed iteration count.
	ReferenceLinearIterations = 300
	// MaxLinearIterations bounds a run to convergence.
	MaxLinearIterations = 10000
	// LinearTolerance and LinearWindow define convergence: the training
	// loss fell by less than LinearTolerance of itself over the last
	// LinearWindow iterations.
	LinearTolerance = 1e-3
	LinearWindow    = 100
)

// LinearConfig configures the linear probe. The zero value is the
// reference's recipe: features standardised with the training features'
// mean and standard deviation, a softmax regression (PyTorch's nn.Linear
// and its initialisation) trained full-batch by Adam, lr 0.01, L2 weight
// decay 1e-4 on every parameter (torch.optim.Adam's weight_decay, added to
// the gradient), until the training loss stops falling (the reference
// stops at 300 iterations; set Iterations for a fixed count).
type LinearConfig struct {
	// Iterations is the number of full-batch Adam steps. Default 0: until
	// converged (see LinearTolerance), at most MaxLinearIterations; 300 is
	// the reference's fixed count.
	Iterations int `yaml:"iterations"`
	// LR is Adam's learning rate, > 0. nil means DefaultLinearLR; 0 is an
	// error, not the default.
	LR *float64 `yaml:"lr"`
	// WeightDecay is the L2 coefficient added to the gradient, ≥ 0; nil
	// means 1e-4, 0 turns it off.
	WeightDecay *float64 `yaml:"weight_decay"`
	// Seed seeds the classifier's initial weights. Default 0.
	Seed uint64 `yaml:"seed"`
	// Workers is the number of goroutines. Default GOMAXPROCS. The result
	// does not depend on it.
	Workers int `yaml:"workers"`
}

// Validate checks c.
func (c LinearConfig) Validate() error {
	if c.Iterations < 0 {
		return &pipeline.FieldError{Field: "iterations", Msg: fmt.Sprintf("must be ≥ 1 (0: until converged), got %d", c.Iterations)}
	}
	if lr := c.LR; lr != nil && !(*lr > 0 && !math.IsInf(*lr, 0)) {
		return &pipeline.FieldError{Field: "lr", Msg: fmt.Sprintf("must be a finite number > 0 (leave it out for %g), got %v", DefaultLinearLR, *lr)}
	}
	if wd := c.WeightDecay; wd != nil && (*wd < 0 || math.IsNaN(*wd) || math.IsInf(*wd, 0)) {
		return &pipeline.FieldError{Field: "weight_decay", Msg: fmt.Sprintf("must be a finite number ≥ 0, got %v", *wd)}
	}
	if c.Workers < 0 {
		return &pipeline.FieldError{Field: "workers", Msg: fmt.Sprintf("must be ≥ 0, got %d", c.Workers)}
	}
	return nil
}

func (c LinearConfig) withDefaults() LinearConfig {
	if c.LR == nil {
		c.LR = new(DefaultLinearLR)
	}
	if c.WeightDecay == nil {
		wd := DefaultLinearWeightDecay
		c.WeightDecay = &wd
	}
	if c.Workers == 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	return c
}

// LinearResult is the outcome of a linear probe.
type LinearResult struct {
	// Accuracy is the test top-1: the fraction of test rows whose
	// largest logit is their label. Correct and Total count them.
	Accuracy       float64
	Correct, Total int
	// Predictions holds each test row's predicted label.
	Predictions []int64
	// TrainAccuracy and Loss are the classifier's top-1 and mean
	// cross-entropy on the training features after the last iteration.
	TrainAccuracy, Loss float64
	// Iterations is the number of Adam steps taken, and Converged whether
	// a run to convergence met LinearTolerance (false for a fixed count).
	Iterations int
	Converged  bool
	// Classes is the number of classes (the largest label + 1).
	Classes int
	// Mean and Std are the standardisation (from the training features):
	// a feature x becomes (x − Mean)/Std.
	Mean, Std []float32
	// Weight (Classes×D, row-major) and Bias are the classifier, on
	// standardised features.
	Weight, Bias []float32
}

// Standardize returns the per-column mean and standard deviation of f's
// features as the reference computes them: the unbiased (N−1) standard
// deviation plus 1e-6, so a constant column is divided by 1e-6, not 0.
func Standardize(f Features) (mean, std []float32) {
	mean, std = make([]float32, f.D), make([]float32, f.D)
	m, s := make([]float64, f.D), make([]float64, f.D)
	for i := range f.N {
		for j, v := range f.Data[i*f.D : (i+1)*f.D] {
			m[j] += float64(v)
		}
	}
	for j := range m {
		m[j] /= float64(f.N)
	}
	for i := range f.N {
		for j, v := range f.Data[i*f.D : (i+1)*f.D] {
			d := float64(v) - m[j]
			s[j] += d * d
		}
	}
	for j := range s {
		sd := 0.0
		if f.N > 1 {
			sd = math.Sqrt(s[j] / float64(f.N-1))
		}
		mean[j], std[j] = float32(m[j]), float32(sd+1e-6)
	}
	return mean, std
}

// standardized returns f's features as (x − mean)/std.
func standardized(f Features, mean, std []float32) []float32 {
	out := make([]float32, len(f.Data))
	for i := range f.N {
		for j, v := range f.Data[i*f.D : (i+1)*f.D] {
			out[i*f.D+j] = (v - mean[j]) / std[j]
		}
	}
	return out
}

// linearBlock is the number of rows one goroutine takes at a time. The
// gradient is summed block by block in a fixed order, so the result does
// not depend on the number of workers.
const linearBlock = 2048

// Linear trains a softmax-regression classifier on the training features
// (standardised by their own mean and standard deviation, see Standardize)
// and returns its top-1 accuracy on the test features (standardised the
// same way). The algorithm is full-batch Adam on the mean cross-entropy
// (see LinearConfig), deterministic for a seed. Neither input is modified.
//
// Cost: per iteration two N×D×Classes matrix products (gonum's SGEMM), in
// blocks of rows over cfg.Workers goroutines (a pipeline.Team made once
// per call); 60,000×128 features of 10 classes take a few seconds for 300
// iterations on two cores. A panic in a worker comes back as the error,
// wrapping a *pipeline.PanicError with the stack.
func Linear(train, test Features, cfg LinearConfig) (LinearResult, error) {
	if err := cfg.Validate(); err != nil {
		return LinearResult{}, err
	}
	cfg = cfg.withDefaults()
	if err := train.check("train"); err != nil {
		return LinearResult{}, err
	}
	if err := test.check("test"); err != nil {
		return LinearResult{}, err
	}
	if train.D != test.D {
		return LinearResult{}, fmt.Errorf("eval: train has %d-dimensional features, test %d", train.D, test.D)
	}
	classes := 0
	for _, ls := range [][]int64{train.Labels, test.Labels} {
		for _, l := range ls {
			classes = max(classes, int(l)+1)
		}
	}
	n, d := train.N, train.D
	res := LinearResult{Classes: classes}
	res.Mean, res.Std = Standardize(train)
	x := standardized(train, res.Mean, res.Std)

	// nn.Linear's initialisation: weight and bias uniform in ±1/√D.
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x11ea7))
	bound := 1 / math.Sqrt(float64(d))
	params := make([]float64, classes*d+classes) // weight, then bias
	for i := range params {
		params[i] = (2*rng.Float64() - 1) * bound
	}
	w32 := make([]float32, classes*d)
	b32 := make([]float32, classes)
	grad := make([]float64, len(params))
	m1, m2 := make([]float64, len(params)), make([]float64, len(params))
	const beta1, beta2, eps = 0.9, 0.999, 1e-8

	blocks := (n + linearBlock - 1) / linearBlock
	type part struct {
		gw          []float32 // classes×d
		gb          []float64
		loss        float64
		correct     int
		logits, dlg []float32
	}
	parts := make([]part, blocks)
	for i := range parts {
		rows := min(linearBlock, n-i*linearBlock)
		parts[i] = part{gw: make([]float32, classes*d), gb: make([]float64, classes),
			logits: make([]float32, rows*classes), dlg: make([]float32, rows*classes)}
	}
	impl := gonum.Implementation{}
	// block computes block bi's logits, loss, hits and gradient into
	// parts[bi]; pass runs every block on the team and sums the parts in
	// block order, so the result does not depend on the number of workers.
	// Both are made once: a pass allocates nothing.
	var team pipeline.Team
	block := func(_, bi int) error {
		if testHookBlock != nil {
			testHookBlock(bi)
		}
		p := &parts[bi]
		lo := bi * linearBlock
		rows := min(linearBlock, n-lo)
		xb := x[lo*d : (lo+rows)*d]
		impl.Sgemm(blas.NoTrans, blas.Trans, rows, classes, d, 1, xb, d, w32, d, 0, p.logits, classes)
		for r := range rows {
			for c := range classes {
				p.logits[r*classes+c] += b32[c]
			}
		}
		p.loss, p.correct = CrossEntropy(p.logits, train.Labels[lo:lo+rows], classes, 1/float64(n), p.dlg)
		clear(p.gb)
		for r := range rows {
			for c, g := range p.dlg[r*classes : (r+1)*classes] {
				p.gb[c] += float64(g)
			}
		}
		impl.Sgemm(blas.Trans, blas.NoTrans, classes, d, rows, 1, p.dlg, classes, xb, d, 0, p.gw, d)
		return nil
	}
	// pass computes the loss, the training accuracy and the gradient of
	// the mean cross-entropy for the current w32, b32.
	pass := func() (loss float64, correct int, err error) {
		if err := team.Run(blocks, cfg.Workers, block); err != nil {
			return 0, 0, fmt.Errorf("eval: linear probe: %w", err)
		}
		clear(grad)
		for bi := range parts {
			p := &parts[bi]
			for i, v := range p.gw {
				grad[i] += float64(v)
			}
			for c, v := range p.gb {
				grad[classes*d+c] += v
			}
			loss += p.loss
			correct += p.correct
		}
		return loss / float64(n), correct, nil
	}
	sync32 := func() {
		for i := range w32 {
			w32[i] = float32(params[i])
		}
		for c := range b32 {
			b32[c] = float32(params[classes*d+c])
		}
	}
	sync32()
	wd := *cfg.WeightDecay
	limit := cfg.Iterations
	if limit == 0 {
		limit = MaxLinearIterations
	}
	history := make([]float64, 0, limit) // the training loss before each step
	for t := 1; t <= limit; t++ {
		l, _, err := pass()
		if err != nil {
			return LinearResult{}, err
		}
		history = append(history, l)
		if cfg.Iterations == 0 && t > LinearWindow {
			if old := history[t-1-LinearWindow]; old-l < LinearTolerance*l {
				res.Converged = true
				break
			}
		}
		res.Iterations = t
		bc1 := 1 - math.Pow(beta1, float64(t))
		bc2 := 1 - math.Pow(beta2, float64(t))
		for i, g := range grad {
			g += wd * params[i]
			m1[i] = beta1*m1[i] + (1-beta1)*g
			m2[i] = beta2*m2[i] + (1-beta2)*g*g
			params[i] -= *cfg.LR / bc1 * m1[i] / (math.Sqrt(m2[i])/math.Sqrt(bc2) + eps)
		}
		sync32()
	}
	loss, correct, err := pass()
	if err != nil {
		return LinearResult{}, err
	}
	res.Loss, res.TrainAccuracy = loss, float64(correct)/float64(n)
	res.Weight, res.Bias = w32, b32

	xt := standardized(test, res.Mean, res.Std)
	res.Total = test.N
	res.Predictions = Predict(xt, test.N, d, w32, b32)
	for i, p := range res.Predictions {
		if p == test.Labels[i] {
			res.Correct++
		}
	}
	res.Accuracy = float64(res.Correct) / float64(res.Total)
	return res, nil
}

// CrossEntropy computes, for the len(labels) rows of logits (row-major,
// classes a row), the summed softmax cross-entropy against labels, the
// number of rows whose largest logit is their label, and in grad (same
// shape as logits) scale·(softmax − one-hot), the gradient of scale times
// the sum. With scale 1/N for N rows in all, grad is the gradient of the
// mean. The log-sum-exp is taken in float64 after subtracting the row's
// maximum.
func CrossEntropy(logits []float32, labels []int64, classes int, scale float64, grad []float32) (sum float64, correct int) {
	for r, label := range labels {
		lg := logits[r*classes : (r+1)*classes]
		dl := grad[r*classes : (r+1)*classes]
		mx, best := math.Inf(-1), 0
		for c, v := range lg {
			if float64(v) > mx {
				mx, best = float64(v), c
			}
		}
		if int64(best) == label {
			correct++
		}
		var z float64
		for c, v := range lg {
			e := math.Exp(float64(v) - mx)
			dl[c] = float32(e)
			z += e
		}
		sum += mx + math.Log(z) - float64(lg[label])
		for c := range lg {
			g := float64(dl[c]) / z * scale
			if int64(c) == label {
				g -= scale
			}
			dl[c] = float32(g)
		}
	}
	return sum, correct
}

// Predict returns, for each of the n rows of x (n×d, row-major), the
// index of the largest logit x·weightᵀ + bias (weight classes×d); ties go
// to the smaller class.
func Predict(x []float32, n, d int, weight, bias []float32) []int64 {
	classes := len(bias)
	logits := make([]float32, n*classes)
	gonum.Implementation{}.Sgemm(blas.NoTrans, blas.Trans, n, classes, d, 1, x, d, weight, d, 0, logits, classes)
	out := make([]int64, n)
	for r := range n {
		best := 0
		lg := logits[r*classes : (r+1)*classes]
		for c := range lg {
			if lg[c]+bias[c] > lg[best]+bias[best] {
				best = c
			}
		}
		out[r] = int64(best)
	}
	return out
}

// testHookBlock, when set (by tests only), is called before each block of
// rows of a pass, on the worker that runs it.
var testHookBlock func(bi int)
