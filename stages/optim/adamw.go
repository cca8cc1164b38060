package optim

import "math"

// AdamW is Adam with decoupled weight decay (Loshchilov and Hutter),
// exactly torch.optim.AdamW's rule (amsgrad off). At step t (from 1), for
// each param p with gradient g, betas β₁, β₂, ε, weight decay λ (0 for a
// NoDecay param when ExcludeBiasAndNorm is on) and learning rate lr, with
// m and v starting at 0:
//
//	p = p·(1 − lr·λ)
//	m = β₁·m + (1 − β₁)·g
//	v = β₂·v + (1 − β₂)·g²
//	p = p − (lr/(1 − β₁ᵗ))·m / (√v/√(1 − β₂ᵗ) + ε)
//
// which is p − lr·m̂/(√v̂ + ε) with m̂ = m/(1 − β₁ᵗ), v̂ = v/(1 − β₂ᵗ); ε is
// added after the square root of the bias-corrected v. The bias
// corrections are computed in float64 and rounded once per step, as
// PyTorch does. New makes one; its state (two buffers per param) is
// allocated there.
type AdamW struct {
	params       []*Param
	lens         []int
	m, v         [][]float32
	beta1, beta2 float64
	eps, wd      float64
	exclude      bool
	t            int
}

var _ Optimizer = (*AdamW)(nil)

func newAdamW(c Config, params []*Param) *AdamW {
	return &AdamW{
		params: params, lens: lengths(params), m: newBufs(params), v: newBufs(params),
		beta1: *c.Beta1, beta2: *c.Beta2, eps: *c.Eps, wd: *c.WeightDecay,
		exclude: *c.ExcludeBiasAndNorm,
	}
}

// Step applies one AdamW update with learning rate lr.
func (o *AdamW) Step(lr float64) {
	o.t++
	t := float64(o.t)
	bc1 := 1 - math.Pow(o.beta1, t)
	bc2 := 1 - math.Pow(o.beta2, t)
	negStep := float32(-lr / bc1)
	bc2s := float32(math.Sqrt(bc2))
	eps := float32(o.eps)
	b1, ob1 := float32(o.beta1), float32(1-o.beta1)
	b2, ob2 := float32(o.beta2), float32(1-o.beta2)
	for i, p := range o.params {
		checkLens(p, o.lens[i])
		d := p.Data
		g := p.Grad[:len(d)]
		m, v := o.m[i][:len(d)], o.v[i][:len(d)]
		if o.wd != 0 && !(o.exclude && p.NoDecay) {
			decay := float32(1 - lr*o.wd)
			for j := range d {
				d[j] *= decay
			}
		}
		for j := range d {
			gj := g[j]
			mj := float32(b1*m[j]) + float32(ob1*gj)
			vj := float32(b2*v[j]) + float32(float32(ob2*gj)*gj)
			m[j], v[j] = mj, vj
			den := float32(float32(math.Sqrt(float64(vj)))/bc2s) + eps
			d[j] += float32(negStep*mj) / den
		}
	}
}

// Steps is the number of steps taken.
func (o *AdamW) Steps() int { return o.t }

// Params returns the params AdamW updates.
func (o *AdamW) Params() []*Param { return o.params }

func (o *AdamW) sets() []bufSet { return []bufSet{{StateAdamM, o.m}, {StateAdamV, o.v}} }

// State returns the step count and "optim.adam.m.<name>" and
// "optim.adam.v.<name>" for every param.
func (o *AdamW) State() map[string][]float32 { return saveState(o.t, o.params, o.sets()) }

// Load restores a State.
func (o *AdamW) Load(state map[string][]float32) error {
	t, err := loadState(state, o.params, o.sets(), AdamWName)
	if err != nil {
		return err
	}
	o.t = t
	return nil
}
