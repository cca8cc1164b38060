package optim

import (
	"fmt"
	"testing"
)

func TestBiasAndNorm(t *testing.T) {
	tests := []struct {
		name  string
		shape []int
		want  bool
	}{
		{"head.0.bias", nil, true},
		{"bias", nil, true},
		{"f.0.1.weight", []int{32}, true}, // BatchNorm weight, known by its shape
		{"f.0.1.weight", nil, false},      // … and not by its name
		{"f.0.0.weight", []int{32, 1, 3, 3}, false},
		{"head.0.weight", []int{128, 128}, false},
		{"layer1.0.bn1.weight", nil, true},
		{"encoder.norm.weight", nil, true},
		{"layernorm.weight", nil, true},
		{"f.0.0.weight", nil, false},
		{"biased.weight", nil, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.name, tt.shape), func(t *testing.T) {
			if got := BiasAndNorm(&Param{Name: tt.name, Shape: tt.shape}); got != tt.want {
				t.Errorf("BiasAndNorm(%q, %v) = %v, want %v", tt.name, tt.shape, got, tt.want)
			}
		})
	}
}

func TestMarkNoDecay(t *testing.T) {
	ps := []*Param{{Name: "f.0.0.weight"}, {Name: "f.0.1.weight"}, {Name: "f.0.1.bias"}, {Name: "head.0.weight"}}
	if n := MarkNoDecay(ps, BiasAndNorm); n != 1 || !ps[2].NoDecay {
		t.Fatalf("BiasAndNorm marked %d, want only f.0.1.bias", n)
	}
	if n := MarkNoDecay(ps, NameIn("f.0.1.weight", "f.0.1.bias")); n != 2 {
		t.Fatalf("NameIn marked %d, want 2", n)
	}
	for i, want := range []bool{false, true, true, false} {
		if ps[i].NoDecay != want {
			t.Errorf("%s: NoDecay = %v, want %v", ps[i].Name, ps[i].NoDecay, want)
		}
	}
}

func TestNewRejectsParams(t *testing.T) {
	tests := []struct {
		name   string
		params []*Param
	}{
		{"nil", []*Param{nil}},
		{"no name", []*Param{{Data: []float32{1}, Grad: []float32{1}}}},
		{"twice", []*Param{{Name: "a", Data: []float32{1}, Grad: []float32{1}}, {Name: "a", Data: []float32{1}, Grad: []float32{1}}}},
		{"grad length", []*Param{{Name: "a", Data: []float32{1, 2}, Grad: []float32{1}}}},
		{"shape", []*Param{{Name: "a", Shape: []int{3}, Data: []float32{1, 2}, Grad: []float32{1, 2}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(Config{}, tt.params); err == nil {
				t.Error("New accepted them")
			}
		})
	}
}
