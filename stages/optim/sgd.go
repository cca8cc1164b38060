package optim

// SGD is stochastic gradient descent with momentum, exactly
// torch.optim.SGD's rule. For each param p with gradient g, momentum μ,
// dampening τ, weight decay λ (0 for a NoDecay param when
// ExcludeBiasAndNorm is on) and learning rate lr:
//
//	d = g + λ·p
//	b = d                       on the first step
//	b = μ·b + (1 − τ)·d         afterwards
//	d = d + μ·b  (Nesterov)     or   d = b
//	p = p − lr·d
//
// With μ = 0 there is no buffer and p = p − lr·(g + λ·p). New makes one;
// its state (one buffer per param when μ > 0) is allocated there.
type SGD struct {
	params              []*Param
	lens                []int
	buf                 [][]float32 // nil when momentum is 0
	momentum, dampening float64
	wd                  float64
	nesterov, exclude   bool
	t                   int
}

var _ Optimizer = (*SGD)(nil)

func newSGD(c Config, params []*Param) *SGD {
	o := &SGD{
		params: params, lens: lengths(params),
		momentum: *c.Momentum, dampening: c.Dampening, wd: *c.WeightDecay,
		nesterov: c.Nesterov, exclude: *c.ExcludeBiasAndNorm,
	}
	if o.momentum != 0 {
		o.buf = newBufs(params)
	}
	return o
}

// Step applies one SGD update with learning rate lr.
func (o *SGD) Step(lr float64) {
	nlr := float32(-lr)
	mom, damp1 := float32(o.momentum), float32(1-o.dampening)
	first := o.t == 0
	for i, p := range o.params {
		checkLens(p, o.lens[i])
		wd := float32(o.wd)
		if o.exclude && p.NoDecay {
			wd = 0
		}
		d := p.Data
		g := p.Grad[:len(d)]
		if o.buf == nil {
			for j := range d {
				dp := g[j]
				if wd != 0 {
					dp += float32(wd * d[j])
				}
				d[j] += float32(nlr * dp)
			}
			continue
		}
		b := o.buf[i][:len(d)]
		for j := range d {
			dp := g[j]
			if wd != 0 {
				dp += float32(wd * d[j])
			}
			if first {
				b[j] = dp
			} else {
				b[j] = float32(mom*b[j]) + float32(damp1*dp)
			}
			if o.nesterov {
				dp += float32(mom * b[j])
			} else {
				dp = b[j]
			}
			d[j] += float32(nlr * dp)
		}
	}
	o.t++
}

// Steps is the number of steps taken.
func (o *SGD) Steps() int { return o.t }

// Params returns the params SGD updates.
func (o *SGD) Params() []*Param { return o.params }

func (o *SGD) sets() []bufSet {
	if o.buf == nil {
		return nil
	}
	return []bufSet{{StateMomentum, o.buf}}
}

// State returns the step count and, with momentum, "optim.momentum.<name>"
// for every param (zeros before the first step).
func (o *SGD) State() map[string][]float32 { return saveState(o.t, o.params, o.sets()) }

// Load restores a State.
func (o *SGD) Load(state map[string][]float32) error {
	t, err := loadState(state, o.params, o.sets(), SGDName)
	if err != nil {
		return err
	}
	o.t = t
	return nil
}
