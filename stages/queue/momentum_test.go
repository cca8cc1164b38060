package queue

import (
	"math"
	"slices"
	"testing"

	"github.com/contrastream/contrastream/stages/optim"
)

func TestMomentumUpdateFormula(t *testing.T) {
	key := []float32{1, -2, 0.5, 3e-3, 100}
	query := []float32{0.25, 4, -0.5, 7, -100}
	for _, m := range []float64{0.99, 0.999, 0.5, 0, 1} {
		got := slices.Clone(key)
		MomentumUpdate(got, query, m)
		// ξ ← m·ξ + (1−m)·θ in float32: m and 1−m rounded once, each
		// product rounded, then the sum.
		mf, om := float32(m), float32(1-m)
		for i := range key {
			want := float32(mf*key[i]) + float32(om*query[i])
			if got[i] != want {
				t.Errorf("m=%v element %d: got %v, want %v", m, i, got[i], want)
			}
			// … which is the formula within float32 rounding.
			exact := m*float64(key[i]) + (1-m)*float64(query[i])
			if math.Abs(float64(got[i])-exact) > 1e-6*math.Max(1, math.Abs(exact)) {
				t.Errorf("m=%v element %d: got %v, formula %v", m, i, got[i], exact)
			}
		}
	}
	// By hand: m = 0.5 averages.
	k := []float32{1, -2}
	MomentumUpdate(k, []float32{3, 4}, 0.5)
	if k[0] != 2 || k[1] != 1 {
		t.Errorf("m = 0.5: got %v, want [2 1]", k)
	}
}

func params(names []string, vals ...[]float32) []*optim.Param {
	ps := make([]*optim.Param, len(names))
	for i, n := range names {
		ps[i] = &optim.Param{Name: n, Data: slices.Clone(vals[i])}
	}
	return ps
}

func TestMomentumUpdateParams(t *testing.T) {
	names := []string{"f.0.0.weight", "head.0.bias"}
	query := params(names, []float32{1, 2, 3}, []float32{-1})
	key := params(names, []float32{0, 0, 0}, []float32{5})
	if err := CopyParams(key, query); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(key[0].Data, query[0].Data) || key[1].Data[0] != -1 {
		t.Fatal("CopyParams did not copy")
	}
	// The query encoder takes a step; the key encoder follows it.
	query[0].Data = []float32{2, 0, 3}
	query[1].Data[0] = 1
	const m = 0.99
	if err := MomentumUpdateParams(key, query, m); err != nil {
		t.Fatal(err)
	}
	mf, om := float32(m), float32(1-m)
	want := [][]float32{
		{float32(mf*1) + float32(om*2), float32(mf*2) + float32(om*0), float32(mf*3) + float32(om*3)},
		{float32(mf*-1) + float32(om*1)},
	}
	for i := range key {
		if !slices.Equal(key[i].Data, want[i]) {
			t.Errorf("%s: got %v, want %v", key[i].Name, key[i].Data, want[i])
		}
	}
	if key[0].Data[0] != 1.01 {
		// 0.99·1 + 0.01·2 = 1.01, and float32 rounding lands on it here.
		t.Errorf("by hand: got %v, want 1.01", key[0].Data[0])
	}

	// Mismatches are refused before anything changes.
	before := slices.Clone(key[0].Data)
	for _, bad := range [][]*optim.Param{
		params([]string{"f.0.0.weight"}, []float32{1, 2, 3}),
		params([]string{"f.0.0.weight", "head.0.weight"}, []float32{1, 2, 3}, []float32{1}),
		params(names, []float32{1, 2, 3}, []float32{1, 2}),
	} {
		if err := MomentumUpdateParams(key, bad, m); err == nil {
			t.Errorf("accepted query params %v", bad)
		}
		if err := CopyParams(key, bad); err == nil {
			t.Errorf("CopyParams accepted query params %v", bad)
		}
	}
	if !slices.Equal(before, key[0].Data) {
		t.Error("a refused update changed the key params")
	}
}

func TestMomentumSchedule(t *testing.T) {
	const total = 1000
	cos, err := Config{Momentum: Float(0.99), MomentumSchedule: Cosine}.NewMomentum(total)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		t    int
		want float64
	}{
		{0, 0.99},
		{total / 2, 0.995}, // 1 − 0.01·(0 + 1)/2
		{total / 4, 1 - 0.01*(math.Sqrt2/2+1)/2},
		{total, 1},
		{2 * total, 1},
		{-5, 0.99},
	} {
		if got := cos.At(tt.t); math.Abs(got-tt.want) > 1e-15 {
			t.Errorf("cosine At(%d) = %.17g, want %.17g", tt.t, got, tt.want)
		}
	}
	con, err := Config{}.NewMomentum(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []int{0, 500, 1 << 30} {
		if con.At(step) != DefaultMomentum {
			t.Errorf("constant At(%d) = %v, want 0.99", step, con.At(step))
		}
	}
	if _, err := (Config{MomentumSchedule: Cosine}).NewMomentum(0); err == nil {
		t.Error("cosine schedule without the run's length")
	}
}
