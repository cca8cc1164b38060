package optim

import (
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
)

// stateConfigs are the optimizers the state tests resume.
var stateConfigs = map[string]Config{
	"sgd":          {},
	"sgd-nesterov": {Nesterov: true},
	"sgd-plain":    {Momentum: Float(0)},
	"lars":         {Optimizer: LARSName},
	"adamw":        {Optimizer: AdamWName, ExcludeBiasAndNorm: Bool(true)},
}

func cloneParams(ps []*Param) []*Param {
	out := make([]*Param, len(ps))
	for i, p := range ps {
		q := *p
		q.Data, q.Grad = slices.Clone(p.Data), slices.Clone(p.Grad)
		out[i] = &q
	}
	return out
}

// stepGrads sets the gradients of step s deterministically.
func stepGrads(ps []*Param, s int) {
	for i, p := range ps {
		for j := range p.Grad {
			p.Grad[j] = float32(math.Sin(float64(s*7+i*3+j))) * 0.05
		}
	}
}

func TestStateLoadResumesExactly(t *testing.T) {
	const steps, stop = 6, 3
	for name, cfg := range stateConfigs {
		t.Run(name, func(t *testing.T) {
			init := testParams(3, 17)
			init[1].NoDecay = true
			sched, err := Config{}.NewSchedule(steps)
			if err != nil {
				t.Fatal(err)
			}
			// One run of all the steps.
			straight := cloneParams(init)
			o, err := New(cfg, straight)
			if err != nil {
				t.Fatal(err)
			}
			for s := range steps {
				stepGrads(straight, s)
				o.Step(sched.At(s))
			}
			// A run stopped after `stop` steps, its weights and State
			// carried into a fresh optimizer, then resumed.
			first := cloneParams(init)
			o1, _ := New(cfg, first)
			for s := range stop {
				stepGrads(first, s)
				o1.Step(sched.At(s))
			}
			st := o1.State()
			resumed := cloneParams(first)
			o2, err := New(cfg, resumed)
			if err != nil {
				t.Fatal(err)
			}
			if err := o2.Load(st); err != nil {
				t.Fatal(err)
			}
			if o2.Steps() != stop {
				t.Fatalf("Steps() after Load = %d, want %d", o2.Steps(), stop)
			}
			for s := stop; s < steps; s++ {
				stepGrads(resumed, s)
				o2.Step(sched.At(s))
			}
			for i := range straight {
				if !slices.Equal(straight[i].Data, resumed[i].Data) {
					t.Errorf("%s: resumed %v, straight %v", straight[i].Name, resumed[i].Data[:3], straight[i].Data[:3])
				}
			}
		})
	}
}

func TestStateNames(t *testing.T) {
	ps := []*Param{{Name: "w", Data: []float32{1, 2}, Grad: []float32{1, 1}}}
	tests := []struct {
		cfg  Config
		keys []string
	}{
		{Config{}, []string{"optim.momentum.w", "optim.step"}},
		{Config{Momentum: Float(0)}, []string{"optim.step"}},
		{Config{Optimizer: LARSName}, []string{"optim.momentum.w", "optim.step"}},
		{Config{Optimizer: AdamWName}, []string{"optim.adam.m.w", "optim.adam.v.w", "optim.step"}},
	}
	for _, tt := range tests {
		o, err := New(tt.cfg, cloneParams(ps))
		if err != nil {
			t.Fatal(err)
		}
		if got := slices.Sorted(maps.Keys(o.State())); !slices.Equal(got, tt.keys) {
			t.Errorf("%s: state keys %v, want %v", tt.cfg.Optimizer, got, tt.keys)
		}
	}
}

func TestStepCountEncoding(t *testing.T) {
	ps := []*Param{{Name: "w", Data: []float32{1}, Grad: []float32{1}}}
	o, _ := New(Config{Optimizer: AdamWName}, ps)
	for _, n := range []int{0, 1, 1<<24 - 1, 1 << 24, 123456789012} {
		st := map[string][]float32{StateStep: {float32(n & (1<<24 - 1)), float32(n >> 24)}, "optim.adam.m.w": {0}, "optim.adam.v.w": {0}}
		if err := o.Load(st); err != nil {
			t.Fatal(err)
		}
		if o.Steps() != n {
			t.Errorf("step %d loaded as %d", n, o.Steps())
		}
		if got := o.State()[StateStep]; got[0] != st[StateStep][0] || got[1] != st[StateStep][1] {
			t.Errorf("step %d saved as %v", n, got)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	ps := func() []*Param { return []*Param{{Name: "w", Data: []float32{1, 2}, Grad: []float32{1, 1}}} }
	sgd, _ := New(Config{}, ps())
	sgd.Step(0.1)
	good := sgd.State()
	with := func(edit func(map[string][]float32)) map[string][]float32 {
		st := maps.Clone(good)
		edit(st)
		return st
	}
	tests := []struct {
		name  string
		cfg   Config
		state map[string][]float32
		want  string
	}{
		{"no step", Config{}, with(func(st map[string][]float32) { delete(st, StateStep) }), "optim.step"},
		{"bad step", Config{}, with(func(st map[string][]float32) { st[StateStep] = []float32{1.5, 0} }), "optim.step"},
		{"missing buffer", Config{}, with(func(st map[string][]float32) { delete(st, "optim.momentum.w") }), "optim.momentum.w"},
		{"wrong length", Config{}, with(func(st map[string][]float32) { st["optim.momentum.w"] = []float32{1} }), "1 values"},
		{"other params", Config{}, with(func(st map[string][]float32) { st["optim.momentum.v"] = []float32{1, 2} }), "optim.momentum.v"},
		{"other optimizer", Config{Optimizer: AdamWName}, good, "optim.adam.m.w"},
		{"plain sgd given momentum", Config{Momentum: Float(0)}, good, "optim.momentum.w"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, _ := New(tt.cfg, ps())
			before := o.State()
			err := o.Load(tt.state)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load: %v, want an error naming %q", err, tt.want)
			}
			if !maps.EqualFunc(before, o.State(), slices.Equal) {
				t.Error("a failed Load changed the state")
			}
		})
	}
	// Entries of other components (queue, key encoder) are ignored.
	o, _ := New(Config{}, ps())
	if err := o.Load(with(func(st map[string][]float32) { st["queue.keys"] = []float32{1} })); err != nil {
		t.Errorf("Load with a queue entry: %v", err)
	}
}

// TestStateValues: StateValues counts the buffers New allocates, the
// values State copies (less the step count).
func TestStateValues(t *testing.T) {
	for name, cfg := range stateConfigs {
		params := testParams(3, 17)
		o, err := New(cfg, params)
		if err != nil {
			t.Fatal(err)
		}
		var n, held int64
		for _, p := range params {
			n += int64(len(p.Data))
		}
		for k, v := range o.State() {
			if k != StateStep {
				held += int64(len(v))
			}
		}
		if got := cfg.StateValues(n); got != held {
			t.Errorf("%s: StateValues(%d) = %d, State holds %d", name, n, got, held)
		}
	}
}

// TestNonFinite: an infinite gradient (an overflow in the backward pass)
// puts a non-finite value in every optimizer's moments; NonFinite finds
// it by State's name, and finds nothing in a healthy state.
func TestNonFinite(t *testing.T) {
	for name, cfg := range stateConfigs {
		t.Run(name, func(t *testing.T) {
			ps := testParams(3, 17)
			o, err := New(cfg, ps)
			if err != nil {
				t.Fatal(err)
			}
			stepGrads(ps, 0)
			o.Step(0.01)
			if n, i, v, ok := NonFinite(o); ok {
				t.Fatalf("healthy state: %s[%d] = %v", n, i, v)
			}
			ps[1].Grad[5] = float32(math.Inf(1))
			o.Step(0.01)
			n, i, v, ok := NonFinite(o)
			if name == "sgd-plain" { // no state to go wrong
				if ok {
					t.Errorf("SGD without momentum: %s[%d] = %v", n, i, v)
				}
				return
			}
			if !ok || i != 5 || !strings.HasSuffix(n, ps[1].Name) || !math.IsInf(float64(v), 0) && !math.IsNaN(float64(v)) {
				t.Fatalf("NonFinite = %s[%d] = %v, %v; want %s's element 5", n, i, v, ok, ps[1].Name)
			}
			if _, in := o.State()[n]; !in {
				t.Errorf("%s is not a State name", n)
			}
		})
	}
}
