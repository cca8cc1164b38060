package optim

import (
	"fmt"
	"math"

	"github.com/contrastream/contrastream/pipeline"
)

// The optimizers, by their names in Config.Optimizer.
const (
	SGDName   = "sgd"
	LARSName  = "lars"
	AdamWName = "adamw"
)

// The defaults. SGD's are the recipe of torch_reference.py (MoCo v2's,
// for a batch of 256); LARS's are SimCLR's for a batch of 256; AdamW's are
// torch.optim.AdamW's.
const (
	DefaultSGDLR          = 0.06
	DefaultSGDMomentum    = 0.9
	DefaultSGDWeightDecay = 5e-4

	DefaultLARSLR               = 0.3
	DefaultLARSMomentum         = 0.9
	DefaultLARSWeightDecay      = 1e-6
	DefaultLARSTrustCoefficient = 1e-3

	DefaultAdamWLR          = 1e-3
	DefaultAdamWBeta1       = 0.9
	DefaultAdamWBeta2       = 0.999
	DefaultAdamWEps         = 1e-8
	DefaultAdamWWeightDecay = 1e-2
)

// Config chooses and tunes an optimizer and its learning-rate schedule. Its
// zero value is the reference recipe: SGD, lr 0.06, momentum 0.9, weight
// decay 5e-4 on every parameter, cosine decay to 0 over the run, no
// warm-up.
//
// A field whose default is not zero is a pointer, nil meaning the default.
// Where zero is a meaningful setting, Float(0) (YAML: 0) turns it off
// (momentum, weight_decay); where it is impossible (lr, trust_coefficient,
// eps), 0 is an error like any other impossible value, never the default.
// A field that does not apply to the chosen optimizer must be left unset;
// Validate names it otherwise.
//
// LR is the learning rate as used, not per 256 samples: the reference
// scales its 0.06 by batch/256, and so must whoever builds the Config for
// another batch size.
type Config struct {
	// Optimizer is "sgd" (default), "lars" or "adamw".
	Optimizer string `yaml:"optimizer"`
	// LR is the peak learning rate, > 0: the schedule's value after
	// warm-up. Default (nil): sgd 0.06, lars 0.3, adamw 0.001.
	LR *float64 `yaml:"lr"`
	// Momentum is the momentum factor of sgd and lars, in [0, 1).
	// Default 0.9.
	Momentum *float64 `yaml:"momentum"`
	// Dampening is sgd's dampening of the momentum buffer, in [0, 1).
	// Default 0.
	Dampening float64 `yaml:"dampening"`
	// Nesterov turns on Nesterov momentum (sgd, lars); sgd needs momentum
	// > 0 and dampening 0 for it, as PyTorch does. Default false.
	Nesterov bool `yaml:"nesterov"`
	// WeightDecay is the decay factor, ≥ 0: L2 added to the gradient for
	// sgd and lars, decoupled (p ← p·(1 − lr·wd)) for adamw. Default: sgd
	// 5e-4, lars 1e-6, adamw 0.01.
	WeightDecay *float64 `yaml:"weight_decay"`
	// ExcludeBiasAndNorm leaves the params marked NoDecay out of weight
	// decay and, for lars, out of the trust-ratio adaptation. Default:
	// false for sgd and adamw (the reference decays every parameter), true
	// for lars (SimCLR, BYOL).
	ExcludeBiasAndNorm *bool `yaml:"exclude_bias_and_norm"`
	// TrustCoefficient is lars's η in the trust ratio η·‖p‖/‖g + wd·p‖,
	// > 0. Default (nil) 0.001.
	TrustCoefficient *float64 `yaml:"trust_coefficient"`
	// Beta1 is adamw's decay of the first moment, in [0, 1). Default 0.9.
	Beta1 *float64 `yaml:"beta1"`
	// Beta2 is adamw's decay of the second moment, in [0, 1). Default
	// 0.999.
	Beta2 *float64 `yaml:"beta2"`
	// Eps is adamw's ε, added to √v̂, > 0. Default (nil) 1e-8.
	Eps *float64 `yaml:"eps"`
	// Schedule is the learning-rate schedule. Default: cosine decay to 0
	// over the run, no warm-up.
	Schedule ScheduleConfig `yaml:"schedule"`
}

// Float returns a pointer to v, for the pointer fields of Config.
func Float(v float64) *float64 { return &v }

// Bool returns a pointer to v, for Config.ExcludeBiasAndNorm.
func Bool(v bool) *bool { return &v }

// Validate reports the first impossible value, or a value set for an
// optimizer it does not apply to, as a *pipeline.FieldError naming the
// field as the flow's YAML spells it ("lr", "schedule.warmup_steps"). The
// zero Config is valid.
func (c Config) Validate() error {
	kind := c.Optimizer
	switch kind {
	case "":
		kind = SGDName
	case SGDName, LARSName, AdamWName:
	default:
		return &pipeline.FieldError{Field: "optimizer", Msg: fmt.Sprintf("must be %q, %q or %q, got %q", SGDName, LARSName, AdamWName, c.Optimizer)}
	}
	if c.LR != nil && !(finite(*c.LR) && *c.LR > 0) {
		return &pipeline.FieldError{Field: "lr", Msg: fmt.Sprintf("must be a finite number > 0 (leave it out for the optimizer's default), got %v", *c.LR)}
	}
	notFor := func(field, applies string) error {
		return &pipeline.FieldError{Field: field, Msg: fmt.Sprintf("applies to %s only, not to %s", applies, kind)}
	}
	unit := func(field string, v float64) error {
		if !finite(v) || v < 0 || v >= 1 {
			return &pipeline.FieldError{Field: field, Msg: fmt.Sprintf("must be in [0, 1), got %v", v)}
		}
		return nil
	}
	if c.Momentum != nil {
		if kind == AdamWName {
			return notFor("momentum", "sgd and lars (adamw: beta1)")
		}
		if err := unit("momentum", *c.Momentum); err != nil {
			return err
		}
	}
	if c.Dampening != 0 {
		if kind != SGDName {
			return notFor("dampening", "sgd")
		}
		if err := unit("dampening", c.Dampening); err != nil {
			return err
		}
	}
	if c.Nesterov {
		switch {
		case kind == AdamWName:
			return notFor("nesterov", "sgd and lars")
		case c.Momentum != nil && *c.Momentum == 0:
			return &pipeline.FieldError{Field: "nesterov", Msg: "needs momentum > 0"}
		case c.Dampening != 0:
			return &pipeline.FieldError{Field: "nesterov", Msg: "needs dampening 0"}
		}
	}
	if c.WeightDecay != nil && (!finite(*c.WeightDecay) || *c.WeightDecay < 0) {
		return &pipeline.FieldError{Field: "weight_decay", Msg: fmt.Sprintf("must be a finite number ≥ 0, got %v", *c.WeightDecay)}
	}
	if c.TrustCoefficient != nil {
		if kind != LARSName {
			return notFor("trust_coefficient", "lars")
		}
		if v := *c.TrustCoefficient; !(finite(v) && v > 0) {
			return &pipeline.FieldError{Field: "trust_coefficient", Msg: fmt.Sprintf("must be a finite number > 0 (leave it out for %g), got %v", DefaultLARSTrustCoefficient, v)}
		}
	}
	for _, b := range []struct {
		field string
		v     *float64
	}{{"beta1", c.Beta1}, {"beta2", c.Beta2}} {
		if b.v == nil {
			continue
		}
		if kind != AdamWName {
			return notFor(b.field, "adamw")
		}
		if err := unit(b.field, *b.v); err != nil {
			return err
		}
	}
	if c.Eps != nil {
		if kind != AdamWName {
			return notFor("eps", "adamw")
		}
		if v := *c.Eps; !(finite(v) && v > 0) {
			return &pipeline.FieldError{Field: "eps", Msg: fmt.Sprintf("must be a finite number > 0 (leave it out for %g), got %v", DefaultAdamWEps, v)}
		}
	}
	if err := c.Schedule.Validate(); err != nil {
		return prefixField("schedule", err)
	}
	if lr := *c.WithDefaults().LR; c.Schedule.FinalLR > lr {
		return &pipeline.FieldError{Field: "schedule.final_lr", Msg: fmt.Sprintf("must not exceed lr (%v), got %v", lr, c.Schedule.FinalLR)}
	}
	return nil
}

// WithDefaults returns c with every default filled in: Optimizer, LR and
// the fields of the chosen optimizer set, its pointers non-nil, and
// Schedule.Kind set. It does not validate c.
func (c Config) WithDefaults() Config {
	if c.Optimizer == "" {
		c.Optimizer = SGDName
	}
	orF := func(p *float64, def float64) *float64 {
		if p != nil {
			return p
		}
		return Float(def)
	}
	switch c.Optimizer {
	case SGDName:
		c.LR = orF(c.LR, DefaultSGDLR)
		c.Momentum = orF(c.Momentum, DefaultSGDMomentum)
		c.WeightDecay = orF(c.WeightDecay, DefaultSGDWeightDecay)
		if c.ExcludeBiasAndNorm == nil {
			c.ExcludeBiasAndNorm = Bool(false)
		}
	case LARSName:
		c.LR = orF(c.LR, DefaultLARSLR)
		c.Momentum = orF(c.Momentum, DefaultLARSMomentum)
		c.WeightDecay = orF(c.WeightDecay, DefaultLARSWeightDecay)
		if c.ExcludeBiasAndNorm == nil {
			c.ExcludeBiasAndNorm = Bool(true)
		}
		c.TrustCoefficient = orF(c.TrustCoefficient, DefaultLARSTrustCoefficient)
	case AdamWName:
		c.LR = orF(c.LR, DefaultAdamWLR)
		c.WeightDecay = orF(c.WeightDecay, DefaultAdamWWeightDecay)
		if c.ExcludeBiasAndNorm == nil {
			c.ExcludeBiasAndNorm = Bool(false)
		}
		c.Beta1 = orF(c.Beta1, DefaultAdamWBeta1)
		c.Beta2 = orF(c.Beta2, DefaultAdamWBeta2)
		c.Eps = orF(c.Eps, DefaultAdamWEps)
	}
	if c.Schedule.Kind == "" {
		c.Schedule.Kind = Cosine
	}
	return c
}

// StateValues is the number of float32 values of state that New allocates
// for params parameter values, and that Optimizer.State copies: one
// buffer per parameter for sgd with momentum > 0 and for lars, two for
// adamw (its moments).
func (c Config) StateValues(params int64) int64 {
	c = c.WithDefaults()
	switch c.Optimizer {
	case AdamWName:
		return 2 * params
	case SGDName:
		if *c.Momentum == 0 {
			return 0
		}
	}
	return params
}

// Optimizer updates a fixed list of Params in place from their gradients.
// Implementations are not safe for concurrent use.
type Optimizer interface {
	// Step applies one update with learning rate lr (the schedule's value
	// for this step) and counts it. It allocates nothing. It panics if a
	// param's Data or Grad changed length since New.
	Step(lr float64)
	// Steps is the number of steps taken (loaded ones included).
	Steps() int
	// Params returns the params given to New, in their order.
	Params() []*Param
	// State returns copies of the optimizer's state for a checkpoint:
	// "optim.step" (the step count as two exact float32 values, low 24
	// bits then the rest: n = s[0] + s[1]·2²⁴) and the moment buffers named
	// by param. It allocates as much as the state holds.
	State() map[string][]float32
	// Load restores what State returned, so that the next Step continues
	// exactly. It reads only the "optim." entries of state, and fails
	// without changing anything when one it needs is missing or has the
	// wrong length, or when one is not its own (another optimizer's).
	Load(state map[string][]float32) error
}

// New validates cfg and params and returns the optimizer cfg names over
// params, its state allocated. The params' NoDecay marks count only when
// ExcludeBiasAndNorm is on (see MarkNoDecay). The schedule is separate:
// see Config.NewSchedule.
func New(cfg Config, params []*Param) (Optimizer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("optim: %w", err)
	}
	if err := checkParams(params); err != nil {
		return nil, fmt.Errorf("optim: %w", err)
	}
	c := cfg.WithDefaults()
	switch c.Optimizer {
	case LARSName:
		return newLARS(c, params), nil
	case AdamWName:
		return newAdamW(c, params), nil
	default:
		return newSGD(c, params), nil
	}
}

// NewSchedule returns c's learning-rate schedule, from c's LR (or its
// optimizer's default) over a run of total steps.
func (c Config) NewSchedule(total int) (*Schedule, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("optim: %w", err)
	}
	s, err := newSchedule(c.Schedule, *c.WithDefaults().LR, total)
	if err != nil {
		return nil, fmt.Errorf("optim: %w", prefixField("schedule", err))
	}
	return s, nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// prefixField puts "prefix." before the field of a *pipeline.FieldError.
func prefixField(prefix string, err error) error {
	if fe, ok := err.(*pipeline.FieldError); ok {
		return &pipeline.FieldError{Field: prefix + "." + fe.Field, Msg: fe.Msg}
	}
	return err
}
