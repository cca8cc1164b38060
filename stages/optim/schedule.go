package optim

import (
	"fmt"
	"math"

	"github.com/contrastream/contrastream/pipeline"
)

// The schedule kinds, by their names in ScheduleConfig.Kind.
const (
	Cosine   = "cosine"
	Constant = "constant"
)

// ScheduleConfig describes a learning-rate schedule over a run. Its zero
// value is cosine decay from the peak learning rate to 0 over the whole
// run, without warm-up: torch's CosineAnnealingLR(T_max = steps), as
// torch_reference.py uses it.
type ScheduleConfig struct {
	// Kind is "cosine" (default) or "constant".
	Kind string `yaml:"kind"`
	// WarmupSteps is the length of the linear warm-up, ≥ 0 and at most the
	// run's steps. Default 0: none.
	WarmupSteps int `yaml:"warmup_steps"`
	// FinalLR is the cosine's value at the end of the run (torch's
	// eta_min), ≥ 0 and at most the peak. Default 0. Cosine only.
	FinalLR float64 `yaml:"final_lr"`
}

// Validate reports the first impossible value as a *pipeline.FieldError.
// The zero ScheduleConfig is valid.
func (c ScheduleConfig) Validate() error {
	switch c.Kind {
	case "", Cosine, Constant:
	default:
		return &pipeline.FieldError{Field: "kind", Msg: fmt.Sprintf("must be %q or %q, got %q", Cosine, Constant, c.Kind)}
	}
	if c.WarmupSteps < 0 {
		return &pipeline.FieldError{Field: "warmup_steps", Msg: fmt.Sprintf("must be ≥ 0, got %d", c.WarmupSteps)}
	}
	if !finite(c.FinalLR) || c.FinalLR < 0 {
		return &pipeline.FieldError{Field: "final_lr", Msg: fmt.Sprintf("must be a finite number ≥ 0, got %v", c.FinalLR)}
	}
	if c.FinalLR != 0 && c.Kind == Constant {
		return &pipeline.FieldError{Field: "final_lr", Msg: "applies to the cosine schedule only"}
	}
	return nil
}

// Schedule gives the learning rate of each step of a run. With peak lr,
// W warm-up steps and T steps in all, the rate of step s (counted from 0,
// the number of optimizer steps taken before it) is
//
//	s < W:       lr·(s+1)/W                                      (warm-up)
//	cosine:      final + (lr − final)·(1 + cos(π·(s−W)/(T−W)))/2  (W ≤ s < T)
//	constant:    lr                                               (s ≥ W)
//	s ≥ T:       final (cosine)
//
// With W = 0 the cosine is torch.optim.lr_scheduler.CosineAnnealingLR with
// T_max = T and eta_min = final, stepped once after every optimizer step.
// A Schedule is immutable and safe for concurrent use.
type Schedule struct {
	cosine        bool
	lr, final     float64
	warmup, total int
}

// NewSchedule returns the schedule cfg describes, peaking at lr (> 0) over
// a run of total steps. A cosine schedule needs total ≥ 1; the warm-up
// must fit in the run (WarmupSteps ≤ total) when total is known; a
// constant schedule takes total 0 for a run of unknown length.
func NewSchedule(cfg ScheduleConfig, lr float64, total int) (*Schedule, error) {
	s, err := newSchedule(cfg, lr, total)
	if err != nil {
		return nil, fmt.Errorf("optim: %w", err)
	}
	return s, nil
}

func newSchedule(cfg ScheduleConfig, lr float64, total int) (*Schedule, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cosine := cfg.Kind != Constant
	switch {
	case !finite(lr) || lr <= 0:
		return nil, fmt.Errorf("schedule: peak learning rate must be a finite number > 0, got %v", lr)
	case cfg.FinalLR > lr:
		return nil, &pipeline.FieldError{Field: "final_lr", Msg: fmt.Sprintf("must not exceed the peak learning rate %v, got %v", lr, cfg.FinalLR)}
	case total < 0 || (cosine && total == 0):
		return nil, fmt.Errorf("schedule: a %s schedule needs the run's number of steps, got %d", cfg.Kind, total)
	case total > 0 && cfg.WarmupSteps > total:
		return nil, &pipeline.FieldError{Field: "warmup_steps", Msg: fmt.Sprintf("must not exceed the run's %d steps, got %d", total, cfg.WarmupSteps)}
	}
	return &Schedule{cosine: cosine, lr: lr, final: cfg.FinalLR, warmup: cfg.WarmupSteps, total: total}, nil
}

// At returns the learning rate of step s (s ≥ 0; a negative s counts as 0).
func (s *Schedule) At(step int) float64 {
	step = max(step, 0)
	if step < s.warmup {
		return s.lr * float64(step+1) / float64(s.warmup)
	}
	if !s.cosine {
		return s.lr
	}
	if step >= s.total {
		return s.final
	}
	t, n := float64(step-s.warmup), float64(s.total-s.warmup)
	return s.final + (s.lr-s.final)*(1+math.Cos(math.Pi*t/n))/2
}

// Total is the number of steps of the run (0 when unknown).
func (s *Schedule) Total() int { return s.total }
