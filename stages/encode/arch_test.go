package encode

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/contrastream/contrastream/pipeline"
)

// TestArchNames: the built-in architectures are registered, and the
// names come sorted.
func TestArchNames(t *testing.T) {
	got := ArchNames()
	for _, n := range []string{ConvNetS, ResNet18, ViT} {
		if !slices.Contains(got, n) {
			t.Errorf("ArchNames() = %q lacks %q", got, n)
		}
	}
	if !slices.IsSorted(got) {
		t.Errorf("ArchNames() = %q, not sorted", got)
	}
}

// renamed is the tiny architecture (example_arch_test.go) under another
// name.
type renamed struct {
	tinyArch
	name string
}

func (a renamed) Name() string { return a.name }

// TestRegisterArchClash: RegisterArch refuses an empty name and a name
// taken.
func TestRegisterArchClash(t *testing.T) {
	for _, tt := range []struct {
		name, arch, want string
	}{
		{"empty", "", "needs a name"},
		{"taken", ResNet18, `"resnet18" registered twice`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if p, _ := recover().(string); !strings.Contains(p, tt.want) {
					t.Errorf("panic %q, want %q", p, tt.want)
				}
			}()
			RegisterArch(renamed{name: tt.arch})
		})
	}
	if a, _ := lookupArch(ResNet18); a != (resnet18Arch{}) {
		t.Errorf("resnet18 is now %T", a)
	}
}

// TestArchFields: a field that the architecture does not read is refused,
// naming the architectures that read it.
func TestArchFields(t *testing.T) {
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{Arch: ResNet18, Patch: 3}, "patch: applies to vit only, got 3"},
		{Config{Arch: ResNet18, Heads: 2}, "heads: applies to vit only, got 2"},
		{Config{Width: 16}, "width: applies to resnet18 and vit only, got 16"},
		{Config{Arch: "tiny", MLP: 5}, "mlp: applies to vit only, got 5"},
		{Config{Arch: ConvNetS, Patch: 2, Width: 3}, "patch: applies to vit only, got 2"},
	} {
		err := tt.cfg.Validate()
		var fe *pipeline.FieldError
		if err == nil || err.Error() != tt.want || !errors.As(err, &fe) {
			t.Errorf("%+v: %v, want %q", tt.cfg, err, tt.want)
		}
	}
}

// TestEveryArch checks each registered architecture, a new one included,
// against what the rest of the package expects of it: ParamCount counts
// what NewWeights makes, under unique names; the head takes Features
// inputs; a replica's forward and backward passes give finite values of
// the right sizes; the memory estimates accept it.
func TestEveryArch(t *testing.T) {
	in := Input{C: 1, H: 14, W: 14}
	for _, name := range ArchNames() {
		t.Run(name, func(t *testing.T) {
			a, _ := lookupArch(name)
			cfg := Config{Arch: name, Hidden: 8, Out: 4}
			if slices.Contains(a.Fields(), "width") {
				cfg.Width = 4
			}
			w, err := NewWeights(cfg, in, rand.New(rand.NewPCG(1, 1)))
			if err != nil {
				t.Fatal(err)
			}
			var n int64
			names := map[string]bool{}
			for _, p := range append(w.Params, w.Buffers...) {
				if names[p.Name] {
					t.Errorf("two tensors named %q", p.Name)
				}
				names[p.Name] = true
			}
			for _, p := range w.Params {
				n += int64(len(p.Data))
			}
			if got, err := cfg.ParamCount(in); err != nil || got != n {
				t.Errorf("ParamCount = %d, %v; NewWeights has %d", got, err, n)
			}
			if h := w.Tensor("head.0.weight"); h == nil || !slices.Equal(h.Shape, []int{cfg.Hidden, w.Features()}) {
				t.Errorf("head.0.weight %v, want [%d %d]", h, cfg.Hidden, w.Features())
			}
			const shard = 2
			r, err := NewReplica(w, shard)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			x := make([]float32, shard*in.Len())
			for i := range x {
				x[i] = float32(math.Sin(float64(i)))
			}
			feats, proj, err := r.Forward(x, Train)
			if err != nil {
				t.Fatal(err)
			}
			if len(feats) != shard*w.Features() || len(proj) != shard*cfg.Out {
				t.Fatalf("%d features and %d projections, want %d and %d", len(feats), len(proj), shard*w.Features(), shard*cfg.Out)
			}
			if err := r.Backward(proj); err != nil {
				t.Fatal(err)
			}
			for _, p := range r.Params() {
				for _, g := range p.Grad {
					if math.IsNaN(float64(g)) || math.IsInf(float64(g), 0) {
						t.Fatalf("%s: gradient %v", p.Name, g)
					}
				}
			}
			if b, err := cfg.ReplicaBytes(in, shard, true); err != nil || b <= 0 {
				t.Errorf("ReplicaBytes = %d, %v", b, err)
			}
		})
	}
}
