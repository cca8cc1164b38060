package optim

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/contrastream/contrastream/pipeline"
	"gopkg.in/yaml.v3"
)

func TestValidateNamesFields(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		field string
	}{
		{"optimizer", Config{Optimizer: "adam"}, "optimizer"},
		{"negative lr", Config{LR: Float(-1)}, "lr"},
		{"NaN lr", Config{LR: Float(math.NaN())}, "lr"},
		{"zero lr", Config{LR: Float(0)}, "lr"},
		{"zero lr adamw", Config{Optimizer: AdamWName, LR: Float(0)}, "lr"},
		{"momentum 1", Config{Momentum: Float(1)}, "momentum"},
		{"negative momentum", Config{Momentum: Float(-0.1)}, "momentum"},
		{"momentum for adamw", Config{Optimizer: AdamWName, Momentum: Float(0.9)}, "momentum"},
		{"dampening range", Config{Dampening: 1}, "dampening"},
		{"dampening for lars", Config{Optimizer: LARSName, Dampening: 0.1}, "dampening"},
		{"nesterov without momentum", Config{Nesterov: true, Momentum: Float(0)}, "nesterov"},
		{"nesterov with dampening", Config{Nesterov: true, Dampening: 0.1}, "nesterov"},
		{"nesterov for adamw", Config{Optimizer: AdamWName, Nesterov: true}, "nesterov"},
		{"negative weight decay", Config{WeightDecay: Float(-1e-4)}, "weight_decay"},
		{"infinite weight decay", Config{WeightDecay: Float(math.Inf(1))}, "weight_decay"},
		{"trust for sgd", Config{TrustCoefficient: Float(0.001)}, "trust_coefficient"},
		{"negative trust", Config{Optimizer: LARSName, TrustCoefficient: Float(-1)}, "trust_coefficient"},
		{"zero trust", Config{Optimizer: LARSName, TrustCoefficient: Float(0)}, "trust_coefficient"},
		{"zero trust for sgd", Config{TrustCoefficient: Float(0)}, "trust_coefficient"},
		{"beta1 for sgd", Config{Beta1: Float(0.9)}, "beta1"},
		{"beta2 range", Config{Optimizer: AdamWName, Beta2: Float(1)}, "beta2"},
		{"eps for lars", Config{Optimizer: LARSName, Eps: Float(1e-8)}, "eps"},
		{"negative eps", Config{Optimizer: AdamWName, Eps: Float(-1)}, "eps"},
		{"zero eps", Config{Optimizer: AdamWName, Eps: Float(0)}, "eps"},
		{"schedule kind", Config{Schedule: ScheduleConfig{Kind: "linear"}}, "schedule.kind"},
		{"schedule warm-up", Config{Schedule: ScheduleConfig{WarmupSteps: -5}}, "schedule.warmup_steps"},
		{"final above default lr", Config{Schedule: ScheduleConfig{FinalLR: 0.1}}, "schedule.final_lr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			var fe *pipeline.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("Validate() = %v, want a FieldError for %q", err, tt.field)
			}
			if _, err := New(tt.cfg, nil); !errors.As(err, &fe) || fe.Field != tt.field {
				t.Errorf("New: %v, want a FieldError for %q", err, tt.field)
			}
		})
	}
}

func TestValidAndDefaults(t *testing.T) {
	for _, c := range []Config{
		{}, {Optimizer: SGDName, Nesterov: true}, {Optimizer: LARSName, Nesterov: true},
		{Optimizer: AdamWName, Beta1: Float(0), WeightDecay: Float(0)},
		{Momentum: Float(0), WeightDecay: Float(0), ExcludeBiasAndNorm: Bool(true)},
		{Schedule: ScheduleConfig{Kind: Constant, WarmupSteps: 100}},
	} {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	sgd := Config{}.WithDefaults()
	if sgd.Optimizer != SGDName || *sgd.LR != 0.06 || *sgd.Momentum != 0.9 || *sgd.WeightDecay != 5e-4 ||
		*sgd.ExcludeBiasAndNorm || sgd.Dampening != 0 || sgd.Nesterov || sgd.Schedule.Kind != Cosine {
		t.Errorf("sgd defaults: %+v", sgd)
	}
	lars := Config{Optimizer: LARSName}.WithDefaults()
	if *lars.LR != 0.3 || *lars.Momentum != 0.9 || *lars.WeightDecay != 1e-6 || *lars.TrustCoefficient != 1e-3 || !*lars.ExcludeBiasAndNorm {
		t.Errorf("lars defaults: %+v", lars)
	}
	adamw := Config{Optimizer: AdamWName}.WithDefaults()
	if *adamw.LR != 1e-3 || *adamw.Beta1 != 0.9 || *adamw.Beta2 != 0.999 || *adamw.Eps != 1e-8 || *adamw.WeightDecay != 0.01 || *adamw.ExcludeBiasAndNorm {
		t.Errorf("adamw defaults: %+v", adamw)
	}
	if adamw.Momentum != nil {
		t.Error("adamw defaults set momentum")
	}
}

func TestConfigYAML(t *testing.T) {
	doc := `
optimizer: lars
lr: 0.5
momentum: 0
nesterov: false
weight_decay: 1.5e-6
exclude_bias_and_norm: false
trust_coefficient: 0.002
schedule:
  kind: cosine
  warmup_steps: 10
  final_lr: 0.001
`
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	var c Config
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if c.Optimizer != LARSName || *c.LR != 0.5 || *c.Momentum != 0 || *c.WeightDecay != 1.5e-6 || *c.ExcludeBiasAndNorm ||
		*c.TrustCoefficient != 0.002 || c.Schedule != (ScheduleConfig{Kind: Cosine, WarmupSteps: 10, FinalLR: 0.001}) {
		t.Errorf("decoded %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}
