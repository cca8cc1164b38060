package optim

import (
	"errors"
	"math"
	"testing"

	"github.com/contrastream/contrastream/pipeline"
)

func TestScheduleCosineMatchesTorch(t *testing.T) {
	// Printed by torch 1.13 (/usr/bin/python3 on this machine): the lr of
	// steps 0..10 of torch.optim.lr_scheduler.CosineAnnealingLR(opt,
	// T_max=10, eta_min=0.001) on SGD(lr=0.06), stepped after every
	// optimizer step.
	torch := []float64{0.059999999999999998, 0.058556167230707029, 0.054366001334060943,
		0.047839664942627952, 0.039616001334060943, 0.030499999999999996, 0.021383998665939052,
		0.013160335057372043, 0.0066339986659390525, 0.0024438327692929704, 0.001}
	s, err := NewSchedule(ScheduleConfig{FinalLR: 0.001}, 0.06, 10)
	if err != nil {
		t.Fatal(err)
	}
	for step, want := range torch {
		if got := s.At(step); math.Abs(got-want) > 1e-15 {
			t.Errorf("At(%d) = %.17g, torch %.17g", step, got, want)
		}
	}
}

func TestSchedule(t *testing.T) {
	const lr = 0.4
	tests := []struct {
		name  string
		cfg   ScheduleConfig
		total int
		step  int
		want  float64
	}{
		// Cosine without warm-up: lr·(1 + cos(π·s/T))/2.
		{"cosine start", ScheduleConfig{}, 100, 0, lr},
		{"cosine mid", ScheduleConfig{}, 100, 50, lr / 2},
		{"cosine quarter", ScheduleConfig{}, 100, 25, lr * (1 + math.Sqrt2/2) / 2},
		{"cosine last", ScheduleConfig{}, 100, 99, lr * (1 + math.Cos(math.Pi*99/100)) / 2},
		{"cosine end", ScheduleConfig{}, 100, 100, 0},
		{"cosine past end", ScheduleConfig{}, 100, 150, 0},
		{"cosine to final", ScheduleConfig{FinalLR: 0.1}, 100, 50, 0.25},
		{"cosine to final end", ScheduleConfig{FinalLR: 0.1}, 100, 100, 0.1},
		// Warm-up of 10 steps: lr·(s+1)/10, then the cosine over the other 90.
		{"warm-up first", ScheduleConfig{WarmupSteps: 10}, 100, 0, lr / 10},
		{"warm-up middle", ScheduleConfig{WarmupSteps: 10}, 100, 4, lr / 2},
		{"warm-up last", ScheduleConfig{WarmupSteps: 10}, 100, 9, lr},
		{"after warm-up", ScheduleConfig{WarmupSteps: 10}, 100, 10, lr},
		{"warm-up then mid", ScheduleConfig{WarmupSteps: 10}, 100, 55, lr / 2},
		{"warm-up then end", ScheduleConfig{WarmupSteps: 10}, 100, 100, 0},
		{"all warm-up", ScheduleConfig{WarmupSteps: 4}, 4, 4, 0},
		// Constant.
		{"constant", ScheduleConfig{Kind: Constant}, 0, 1000, lr},
		{"constant warm-up", ScheduleConfig{Kind: Constant, WarmupSteps: 4}, 0, 1, lr / 2},
		{"constant after warm-up", ScheduleConfig{Kind: Constant, WarmupSteps: 4}, 0, 4, lr},
		{"negative step", ScheduleConfig{}, 100, -3, lr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSchedule(tt.cfg, lr, tt.total)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.At(tt.step); math.Abs(got-tt.want) > 1e-15 {
				t.Errorf("At(%d) = %.17g, want %.17g", tt.step, got, tt.want)
			}
		})
	}
}

func TestNewScheduleErrors(t *testing.T) {
	tests := []struct {
		name  string
		cfg   ScheduleConfig
		lr    float64
		total int
		field string // "" when the error is not a FieldError
	}{
		{"kind", ScheduleConfig{Kind: "step"}, 0.1, 10, "kind"},
		{"negative warm-up", ScheduleConfig{WarmupSteps: -1}, 0.1, 10, "warmup_steps"},
		{"warm-up too long", ScheduleConfig{WarmupSteps: 11}, 0.1, 10, "warmup_steps"},
		{"final above lr", ScheduleConfig{FinalLR: 0.2}, 0.1, 10, "final_lr"},
		{"final for constant", ScheduleConfig{Kind: Constant, FinalLR: 0.01}, 0.1, 10, "final_lr"},
		{"cosine needs total", ScheduleConfig{}, 0.1, 0, ""},
		{"zero lr", ScheduleConfig{}, 0, 10, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewSchedule(tt.cfg, tt.lr, tt.total)
			if err == nil {
				t.Fatal("no error")
			}
			var fe *pipeline.FieldError
			if tt.field != "" && (!errors.As(err, &fe) || fe.Field != tt.field) {
				t.Errorf("error %q does not name field %q", err, tt.field)
			}
		})
	}
}

func TestConfigNewSchedule(t *testing.T) {
	s, err := Config{}.NewSchedule(10)
	if err != nil {
		t.Fatal(err)
	}
	if s.At(0) != DefaultSGDLR || s.At(10) != 0 || s.Total() != 10 {
		t.Errorf("default schedule: At(0) = %v, At(10) = %v, Total = %d", s.At(0), s.At(10), s.Total())
	}
	_, err = Config{Schedule: ScheduleConfig{WarmupSteps: 20}}.NewSchedule(10)
	var fe *pipeline.FieldError
	if !errors.As(err, &fe) || fe.Field != "schedule.warmup_steps" {
		t.Errorf("got %v, want a FieldError for schedule.warmup_steps", err)
	}
}
