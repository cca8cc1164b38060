package loss_test

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/stages/loss"
)

// checkGrad compares out.Grad, from l.Compute(in), with central
// differences of the loss in each input value of both views, perturbed in
// float32; the step is the float32 difference actually taken. A view
// whose gradient has length 0 is not checked: the loss stops its gradient
// (InfoNCE's key, from the key encoder), though its value depends on it.
func checkGrad(t *testing.T, l loss.Loss, in loss.Inputs, out *loss.Outputs, tol float64) {
	t.Helper()
	const h = 1e-3
	var scratch loss.Outputs
	f := func() float64 {
		if err := l.Compute(in, &scratch); err != nil {
			t.Fatal(err)
		}
		return scratch.Loss
	}
	for v := range 2 {
		z := slices.Clone(in.Z[v])
		in.Z[v] = z
		grad := out.Grad[v]
		if len(grad) == 0 {
			continue
		}
		var maxG, maxD float64
		for i, x := range z {
			zp, zm := x+h, x-h
			z[i] = zp
			lp := f()
			z[i] = zm
			lm := f()
			z[i] = x
			fd := (lp - lm) / (float64(zp) - float64(zm))
			maxG = max(maxG, math.Abs(float64(grad[i])))
			maxD = max(maxD, math.Abs(fd-float64(grad[i])))
		}
		t.Logf("%s view %d: max |analytic − finite difference| = %.3g, max |analytic| = %.3g", l.Name(), v, maxD, maxG)
		if !(maxD <= tol*max(maxG, 1e-3)) {
			t.Errorf("%s view %d: gradient off by %.3g (max |gradient| %.3g)", l.Name(), v, maxD, maxG)
		}
	}
}

// Every registered loss, the built-in ones and the toy of
// Example_register: its Kind is consistent, New builds it by name, and on
// a padded batch (with labels and a queue for those that need them) its
// loss is finite, padding rows get no gradient and the gradient matches
// finite differences.
func TestEveryLoss(t *testing.T) {
	const n, d, k = 5, 4, 6
	for _, kd := range loss.Kinds() {
		t.Run(kd.Name, func(t *testing.T) {
			if kd.Doc == "" {
				t.Error("no Doc")
			}
			l := mustNew(t, loss.Config{Type: kd.Name, Workers: 2})
			if l.Name() != kd.Name {
				t.Errorf("New(Type %q) built a loss named %q", kd.Name, l.Name())
			}
			if got, ok := loss.Lookup(kd.Name); !ok || got.Name != kd.Name {
				t.Errorf("Lookup(%q) = %q, %v", kd.Name, got.Name, ok)
			}
			in := randomInputs(7, n, d, k)
			in.Labels = []int64{0, 1, 0, 1, -1} // the padded sample has none
			in.Valid = n - 1
			if !kd.Needs.Queue {
				in.Queue, in.K = nil, 0
			}
			var out loss.Outputs
			if err := l.Compute(in, &out); err != nil {
				t.Fatal(err)
			}
			if math.IsNaN(out.Loss) || math.IsInf(out.Loss, 0) {
				t.Fatalf("loss %v", out.Loss)
			}
			if len(out.Grad[0]) != n*d || (len(out.Grad[1]) != n*d && len(out.Grad[1]) != 0) {
				t.Fatalf("gradients of %d and %d values, want %d (or 0 for view 2)", len(out.Grad[0]), len(out.Grad[1]), n*d)
			}
			for v := range 2 {
				if g := out.Grad[v]; len(g) > 0 && slices.ContainsFunc(g[(n-1)*d:], func(x float32) bool { return x != 0 }) {
					t.Errorf("view %d: the padding row has gradient %v", v, g[(n-1)*d:])
				}
			}
			checkGrad(t, l, in, &out, 1e-3)
			if kd.ReadViews() == 1 {
				// A loss of one view does not read Z[1]: empty, it gives the
				// same bytes.
				var one loss.Outputs
				in.Z[1] = nil
				if err := l.Compute(in, &one); err != nil {
					t.Fatalf("without Z[1]: %v", err)
				}
				if one.Loss != out.Loss || !slices.Equal(one.Grad[0], out.Grad[0]) || len(one.Grad[1]) != 0 {
					t.Errorf("without Z[1]: loss %v, gradient %v; with it %v, %v", one.Loss, one.Grad, out.Loss, out.Grad)
				}
			}
			cfg := loss.Config{Type: kd.Name}
			if m, stage := cfg.MemoryBytes(64, 16, 128), (loss.Config{Type: "nope"}).MemoryBytes(64, 16, 128); m < stage || stage != 4*4*64*16 {
				t.Errorf("MemoryBytes %d, the stage's buffers alone %d (want 16·n·d = %d)", m, stage, 4*4*64*16)
			}
		})
	}
}

// The toy loss of Example_register, on two samples whose views are at a
// known angle: the loss is 2 − 2cos, and its closed-form gradient matches
// finite differences (TestEveryLoss checks it on a padded random batch).
func TestAlignmentGradient(t *testing.T) {
	l := mustNew(t, loss.Config{Type: "alignment"})
	in := loss.Inputs{Z: [2][]float32{{3, 0, 0, 1, 1, 1}, {1, 1, 0, 0, 2, -1}}, N: 2, D: 3}
	var out loss.Outputs
	if err := l.Compute(in, &out); err != nil {
		t.Fatal(err)
	}
	c0, c1 := 1/math.Sqrt2, 1/math.Sqrt(3*5)
	if want := (2 - 2*c0 + 2 - 2*c1) / 2; math.Abs(out.Loss-want) > 1e-6 {
		t.Errorf("loss %.9g, want %.9g", out.Loss, want)
	}
	checkGrad(t, l, in, &out, 1e-4)
}

func TestUnknownLoss(t *testing.T) {
	err := loss.Config{Type: "moco"}.Validate()
	var fe *pipeline.FieldError
	// The names are the registered ones, sorted; alignment is
	// Example_register's.
	if want := `unknown loss "moco"; want "alignment", "crossentropy", "infonce", "ntxent" or "supcon"`; !errors.As(err, &fe) || fe.Field != "type" || fe.Msg != want {
		t.Errorf("error %v, want a FieldError for type: %s", err, want)
	}
	if got, want := loss.Names(), []string{"alignment", "crossentropy", "infonce", "ntxent", "supcon"}; !slices.Equal(got, want) {
		t.Errorf("Names() = %q, want %q", got, want)
	}
	if kd, ok := loss.Lookup(""); !ok || kd.Name != loss.DefaultType || loss.DefaultType != "infonce" {
		t.Errorf(`Lookup("") = %q, %v; want infonce`, kd.Name, ok)
	}
}

func TestNeeds(t *testing.T) {
	for _, tc := range []struct {
		name string
		want loss.Needs
	}{
		{"infonce", loss.Needs{Queue: true}},
		{"ntxent", loss.Needs{}},
		{"supcon", loss.Needs{Labels: true}},
		{"crossentropy", loss.Needs{Labels: true}},
		{"alignment", loss.Needs{}},
	} {
		if kd, _ := loss.Lookup(tc.name); kd.Needs != tc.want {
			t.Errorf("%s needs %+v, want %+v", tc.name, kd.Needs, tc.want)
		}
	}
	if got, want := loss.NeedingNothing(), []string{"alignment", "ntxent"}; !slices.Equal(got, want) {
		t.Errorf("NeedingNothing() = %q, want %q", got, want)
	}
}

func TestRegisterPanics(t *testing.T) {
	newLoss := func(loss.Config) (loss.Loss, error) { return nil, nil }
	for _, tc := range []struct {
		name string
		kind loss.Kind
		want string
	}{
		{"empty", loss.Kind{New: newLoss}, "needs a name"},
		{"taken", loss.Kind{Name: "ntxent", New: newLoss}, `"ntxent" registered twice`},
		{"no New", loss.Kind{Name: "x"}, `"x" has no New`},
		{"temperature", loss.Kind{Name: "x", New: newLoss, DefaultTemperature: -1}, "default temperature -1"},
		{"infinite temperature", loss.Kind{Name: "x", New: newLoss, DefaultTemperature: math.Inf(1)}, "default temperature +Inf"},
		{"three views", loss.Kind{Name: "x", New: newLoss, Views: 3}, "reads 3 views"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if p, _ := recover().(string); !strings.Contains(p, tc.want) {
					t.Errorf("panic %q, want %q", p, tc.want)
				}
			}()
			loss.Register(tc.kind)
		})
	}
	if _, ok := loss.Lookup("x"); ok {
		t.Error("a refused registration is known")
	}
}
