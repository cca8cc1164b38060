package optim

import "math"

// LARS is layer-wise adaptive rate scaling (You, Gitman and Ginsburg,
// "Large Batch Training of Convolutional Networks", 2017) as SimCLR's
// LARSOptimizer (google-research/simclr, lars_optimizer.py, classic
// momentum) and BYOL's implementation apply it. For each param p with
// gradient g, momentum μ, weight decay λ, trust coefficient η and learning
// rate lr, with v starting at 0:
//
//	d     = g + λ·p
//	trust = η·‖p‖/‖d‖            (1 when ‖p‖ = 0 or ‖d‖ = 0)
//	v     = μ·v + lr·trust·d
//	p     = p − v                 or, Nesterov, p − (μ·v + lr·trust·d)
//
// ‖·‖ is the L2 norm of the whole tensor. Note ‖d‖ = ‖g + λ·p‖, as both
// implementations compute it, not the paper's ‖g‖ + λ·‖p‖. When
// ExcludeBiasAndNorm is on (LARS's default), a NoDecay param gets λ = 0
// and trust = 1 (SimCLR's exclude_from_weight_decay and, by default, the
// same exclude_from_layer_adaptation); it then moves by plain momentum SGD
// with the learning rate inside the buffer. Norms accumulate in float64;
// the rest is float32. New makes one; its state (one buffer per param) is
// allocated there.
type LARS struct {
	params            []*Param
	lens              []int
	v                 [][]float32
	momentum, wd, eta float64
	nesterov, exclude bool
	t                 int
}

var _ Optimizer = (*LARS)(nil)

func newLARS(c Config, params []*Param) *LARS {
	return &LARS{
		params: params, lens: lengths(params), v: newBufs(params),
		momentum: *c.Momentum, wd: *c.WeightDecay, eta: *c.TrustCoefficient,
		nesterov: c.Nesterov, exclude: *c.ExcludeBiasAndNorm,
	}
}

// Step applies one LARS update with learning rate lr.
func (o *LARS) Step(lr float64) {
	mom := float32(o.momentum)
	for i, p := range o.params {
		checkLens(p, o.lens[i])
		excluded := o.exclude && p.NoDecay
		wd := float32(o.wd)
		if excluded {
			wd = 0
		}
		d := p.Data
		g := p.Grad[:len(d)]
		v := o.v[i][:len(d)]
		trust := 1.0
		if !excluded {
			var wn, gn float64
			for j := range d {
				gj := g[j]
				if wd != 0 {
					gj += float32(wd * d[j])
				}
				wn += float64(d[j]) * float64(d[j])
				gn += float64(gj) * float64(gj)
			}
			if wn > 0 && gn > 0 {
				trust = o.eta * math.Sqrt(wn) / math.Sqrt(gn)
			}
		}
		slr := float32(lr * trust)
		for j := range d {
			gj := g[j]
			if wd != 0 {
				gj += float32(wd * d[j])
			}
			vj := float32(mom*v[j]) + float32(slr*gj)
			v[j] = vj
			if o.nesterov {
				vj = float32(mom*vj) + float32(slr*gj)
			}
			d[j] -= vj
		}
	}
	o.t++
}

// Steps is the number of steps taken.
func (o *LARS) Steps() int { return o.t }

// Params returns the params LARS updates.
func (o *LARS) Params() []*Param { return o.params }

// State returns the step count and "optim.momentum.<name>" for every param.
func (o *LARS) State() map[string][]float32 { return saveState(o.t, o.params, o.sets()) }

func (o *LARS) sets() []bufSet { return []bufSet{{StateMomentum, o.v}} }

// Load restores a State.
func (o *LARS) Load(state map[string][]float32) error {
	t, err := loadState(state, o.params, o.sets(), LARSName)
	if err != nil {
		return err
	}
	o.t = t
	return nil
}
