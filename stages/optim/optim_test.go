package optim

import (
	"fmt"
	"math"
	"testing"
)

// The three-step problem every update test runs: a parameter of two
// elements starting at p0, the gradients grads[0..2] fed one per step (they
// do not depend on p), learning rate 0.1 on every step.
var (
	p0    = []float32{1, -2}
	grads = [3][]float32{{0.5, -1}, {0.25, 0.5}, {-1, 2}}
)

const testLR = 0.1

// run steps a fresh optimizer made from cfg over a param starting at p0
// (named name, marked noDecay) and returns the values after each step.
func run(t *testing.T, cfg Config, name string, noDecay bool) [3][2]float32 {
	t.Helper()
	p := &Param{Name: name, Data: append([]float32(nil), p0...), Grad: make([]float32, 2), NoDecay: noDecay}
	o, err := New(cfg, []*Param{p})
	if err != nil {
		t.Fatal(err)
	}
	var got [3][2]float32
	for s, g := range grads {
		copy(p.Grad, g)
		o.Step(testLR)
		got[s] = [2]float32{p.Data[0], p.Data[1]}
	}
	if o.Steps() != 3 {
		t.Errorf("Steps() = %d, want 3", o.Steps())
	}
	return got
}

// check compares got with want (float64, computed by hand from the
// formula) within tol·max(1, |want|).
func check(t *testing.T, got [3][2]float32, want [3][2]float64, tol float64) {
	t.Helper()
	for s := range want {
		for i := range want[s] {
			if d := math.Abs(float64(got[s][i]) - want[s][i]); d > tol*math.Max(1, math.Abs(want[s][i])) || math.IsNaN(d) {
				t.Errorf("step %d element %d: got %.9g, want %.12g (off by %.3g)", s+1, i, got[s][i], want[s][i], d)
			}
		}
	}
}

// float64 arithmetic on the same problem agrees with our float32 to a few
// ulps over three steps.
const tolHand = 2e-6

// checkULP compares got with torch's float32 results, printed with 9
// significant digits (which name a float32 exactly), allowing maxULP units
// in the last place.
func checkULP(t *testing.T, got [3][2]float32, want [3][2]float64, maxULP int) {
	t.Helper()
	for s := range want {
		for i := range want[s] {
			w := float32(want[s][i])
			d := int64(math.Float32bits(got[s][i])) - int64(math.Float32bits(w))
			if d < -int64(maxULP) || d > int64(maxULP) || (w < 0) != (got[s][i] < 0) {
				t.Errorf("step %d element %d: got %.9g, torch %.9g (%d ulp)", s+1, i, got[s][i], w, d)
			}
		}
	}
}

// torchULP is how far from torch's results ours may be: one unit in the
// last place, since torch's CPU kernels may fuse a multiply-add that we
// round twice (only SGD-Nesterov's step 3, element 0, differs, by 1 ulp).
const torchULP = 1

func TestSGD(t *testing.T) {
	// d = g + wd·p; b = d (step 1), b = μ·b + (1−τ)·d; d = d + μ·b (Nesterov)
	// or d = b; p = p − lr·d; lr 0.1, μ 0.9, wd 0.01.
	// Step 1 by hand, element 0: d = 0.5 + 0.01·1 = 0.51, b = 0.51;
	// plain: p = 1 − 0.1·0.51 = 0.949; Nesterov: d = 0.51 + 0.9·0.51 =
	// 0.969, p = 1 − 0.0969 = 0.9031. The rest in float64 by the same
	// formula.
	tests := []struct {
		name  string
		cfg   Config
		want  [3][2]float64
		torch bool
	}{
		{"momentum", Config{LR: Float(testLR), Momentum: Float(0.9), WeightDecay: Float(0.01)},
			[3][2]float64{{0.949, -1.898}, {0.877151, -1.854302}, {0.911609749, -2.013119498}}, false},
		{"nesterov", Config{LR: Float(testLR), Momentum: Float(0.9), WeightDecay: Float(0.01), Nesterov: true},
			[3][2]float64{{0.9031, -1.8062}, {0.81257411, -1.81514822}, {0.942869708191, -2.15637841638}}, false},
		{"dampening", Config{LR: Float(testLR), Momentum: Float(0.9), Dampening: 0.1, WeightDecay: Float(0.01)},
			[3][2]float64{{0.949, -1.898}, {0.8797459, -1.8494918}, {0.90662543869, -1.98416987738}}, false},
		// μ = 0: p = p − lr·(g + wd·p); step 1: 1 − 0.1·0.51 = 0.949.
		{"no momentum", Config{LR: Float(testLR), Momentum: Float(0), WeightDecay: Float(0.01)},
			[3][2]float64{{0.949, -1.898}, {0.923051, -1.946102}, {1.022127949, -2.144155898}}, false},
		// Printed by torch 1.13 (/usr/bin/python3 on this machine):
		//   p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
		//   o = torch.optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True)
		//   for g in grads: p.grad = torch.tensor(g); o.step(); print(p)
		{"torch nesterov", Config{LR: Float(testLR), Momentum: Float(0.9), WeightDecay: Float(0.01), Nesterov: true},
			[3][2]float64{{0.903100014, -1.80620003}, {0.812574148, -1.81514823}, {0.942869723, -2.15637851}}, true},
		// The same with momentum=0.9, dampening=0.1, nesterov=False.
		{"torch dampening", Config{LR: Float(testLR), Momentum: Float(0.9), Dampening: 0.1, WeightDecay: Float(0.01)},
			[3][2]float64{{0.949000001, -1.898}, {0.879745901, -1.84949183}, {0.90662545, -1.98416996}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := run(t, tt.cfg, "w", false)
			if tt.torch {
				checkULP(t, got, tt.want, torchULP)
			} else {
				check(t, got, tt.want, tolHand)
			}
		})
	}
}

func TestLARS(t *testing.T) {
	// d = g + wd·p; trust = η·‖p‖/‖d‖; v = μ·v + lr·trust·d (v₀ = 0);
	// p = p − v, or p − (μ·v + lr·trust·d) with Nesterov; lr 0.1, μ 0.9,
	// wd 0.01, η 0.1. Step 1 by hand: d = (0.51, −1.02), ‖p‖ = √5,
	// ‖d‖ = 0.51·√5, trust = 0.1/0.51 = 0.19607843; lr·trust·d =
	// (0.01, −0.02) = v; plain: p = (0.99, −1.98); Nesterov: p = p −
	// (0.009, −0.018) − (0.01, −0.02) = (0.981, −1.962). The rest in
	// float64 by the same formula.
	cfg := Config{Optimizer: LARSName, LR: Float(testLR), Momentum: Float(0.9), WeightDecay: Float(0.01), TrustCoefficient: Float(0.1)}
	t.Run("momentum", func(t *testing.T) {
		check(t, run(t, cfg, "w", false),
			[3][2]float64{{0.99, -1.98}, {0.970463016105, -1.9814684866}, {0.962748479811, -2.00252358272}}, tolHand)
	})
	t.Run("nesterov", func(t *testing.T) {
		c := cfg
		c.Nesterov = true
		check(t, run(t, c, "w", false),
			[3][2]float64{{0.981, -1.962}, {0.953072796366, -1.98245983635}, {0.956026529511, -2.02088686436}}, tolHand)
	})
	t.Run("excluded", func(t *testing.T) {
		// A NoDecay param (ExcludeBiasAndNorm is LARS's default): no decay,
		// trust 1, so v = μ·v + lr·g, p = p − v. Step 1: v = (0.05, −0.1),
		// p = (0.95, −1.9); step 2: v = (0.045 + 0.025, −0.09 + 0.05) =
		// (0.07, −0.04), p = (0.88, −1.86); step 3: v = (0.063 − 0.1,
		// −0.036 + 0.2) = (−0.037, 0.164), p = (0.917, −2.024).
		check(t, run(t, cfg, "w", true),
			[3][2]float64{{0.95, -1.9}, {0.88, -1.86}, {0.917, -2.024}}, tolHand)
	})
	t.Run("zero param", func(t *testing.T) {
		// ‖p‖ = 0: trust 1, so the first step is p = −lr·g.
		p := &Param{Name: "w", Data: []float32{0, 0}, Grad: []float32{1, -2}}
		o, err := New(Config{Optimizer: LARSName, LR: Float(testLR), Momentum: Float(0.9), WeightDecay: Float(0.01)}, []*Param{p})
		if err != nil {
			t.Fatal(err)
		}
		o.Step(testLR)
		if p.Data[0] != -0.1 || p.Data[1] != 0.2 {
			t.Errorf("got %v, want [-0.1 0.2]", p.Data)
		}
	})
}

func TestAdamW(t *testing.T) {
	// p = p·(1 − lr·wd); m = β₁·m + (1−β₁)·g; v = β₂·v + (1−β₂)·g²;
	// p = p − lr·m̂/(√v̂ + ε), m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ); lr 0.1,
	// β = (0.9, 0.999), ε 1e-8, wd 0.01. Step 1 by hand: p·0.999 =
	// (0.999, −1.998); m̂ = g, v̂ = g², so the step is lr·g/(|g| + ε) ≈
	// lr·sign(g): p = (0.899, −1.898) (to 1e-8). The rest in float64 by
	// the same formula.
	cfg := Config{Optimizer: AdamWName, LR: Float(testLR), WeightDecay: Float(0.01)}
	t.Run("hand", func(t *testing.T) {
		check(t, run(t, cfg, "w", false),
			[3][2]float64{{0.899000002, -1.898000001}, {0.804883040475, -1.86946829737}, {0.824713859843, -1.91333200773}}, tolHand)
	})
	t.Run("torch", func(t *testing.T) {
		// Printed by torch 1.13 (/usr/bin/python3 on this machine):
		//   o = torch.optim.AdamW([p], lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
		//   for g in grads: p.grad = torch.tensor(g); o.step(); print(p)
		checkULP(t, run(t, cfg, "w", false),
			[3][2]float64{{0.899000049, -1.898}, {0.804883063, -1.86946833}, {0.824713886, -1.9133321}}, torchULP)
	})
}

func TestWeightDecayExclusion(t *testing.T) {
	// With ExcludeBiasAndNorm on, a NoDecay param moves as with weight
	// decay 0; an unmarked param, or any param with it off, still decays.
	noDecaySGD := [3][2]float64{{0.95, -1.9}, {0.88, -1.86}, {0.917, -2.024}} // μ 0.9, wd 0 (see TestLARS/excluded)
	decaySGD := [3][2]float64{{0.949, -1.898}, {0.877151, -1.854302}, {0.911609749, -2.013119498}}
	// AdamW with wd 0, in float64: step 1 p = p0 − lr·sign(g).
	noDecayAdamW := [3][2]float64{{0.900000002, -1.900000001}, {0.806782040477, -1.87336629737}, {0.827417742885, -1.91909947603}}
	decayAdamW := [3][2]float64{{0.899000002, -1.898000001}, {0.804883040475, -1.86946829737}, {0.824713859843, -1.91333200773}}
	decayLARS := [3][2]float64{{0.99, -1.98}, {0.970463016105, -1.9814684866}, {0.962748479811, -2.00252358272}}
	sgd := Config{LR: Float(testLR), Momentum: Float(0.9), WeightDecay: Float(0.01)}
	adamw := Config{Optimizer: AdamWName, LR: Float(testLR), WeightDecay: Float(0.01)}
	lars := Config{Optimizer: LARSName, LR: Float(testLR), Momentum: Float(0.9), WeightDecay: Float(0.01), TrustCoefficient: Float(0.1)}
	on := func(c Config) Config { c.ExcludeBiasAndNorm = Bool(true); return c }
	off := func(c Config) Config { c.ExcludeBiasAndNorm = Bool(false); return c }
	tests := []struct {
		name    string
		cfg     Config
		noDecay bool
		want    [3][2]float64
	}{
		{"sgd default decays marked", sgd, true, decaySGD},
		{"sgd excluded", on(sgd), true, noDecaySGD},
		{"sgd unmarked", on(sgd), false, decaySGD},
		{"adamw default decays marked", adamw, true, decayAdamW},
		{"adamw excluded", on(adamw), true, noDecayAdamW},
		{"adamw unmarked", on(adamw), false, decayAdamW},
		{"lars default excludes", lars, true, noDecaySGD},
		{"lars off decays marked", off(lars), true, decayLARS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check(t, run(t, tt.cfg, "head.0.bias", tt.noDecay), tt.want, tolHand)
		})
	}
}

func TestStepPanicsOnLengthChange(t *testing.T) {
	p := &Param{Name: "a", Data: []float32{1, 2}, Grad: []float32{1, 2}}
	o, err := New(Config{}, []*Param{p})
	if err != nil {
		t.Fatal(err)
	}
	p.Grad = p.Grad[:1]
	defer func() {
		if recover() == nil {
			t.Error("Step did not panic")
		}
	}()
	o.Step(0.1)
}

func TestStepAllocatesNothing(t *testing.T) {
	for _, cfg := range []Config{{}, {Nesterov: true}, {Optimizer: LARSName}, {Optimizer: AdamWName}} {
		ps := testParams(3, 100)
		o, err := New(cfg, ps)
		if err != nil {
			t.Fatal(err)
		}
		if a := testing.AllocsPerRun(10, func() { o.Step(0.1) }); a != 0 {
			t.Errorf("%+v: %v allocations a step", cfg, a)
		}
	}
}

// testParams returns n params of size values each, with deterministic
// values and gradients.
func testParams(n, size int) []*Param {
	ps := make([]*Param, n)
	for i := range ps {
		p := &Param{Name: fmt.Sprintf("layer.%d.weight", i), Data: make([]float32, size), Grad: make([]float32, size)}
		for j := range size {
			p.Data[j] = float32(math.Sin(float64(i*size+j))) * 0.1
			p.Grad[j] = float32(math.Cos(float64(i*size+j)*1.3)) * 0.01
		}
		ps[i] = p
	}
	return ps
}
