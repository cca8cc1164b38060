package optim

import (
	"fmt"
	"strings"
)

// Param is one trainable tensor as the optimizer sees it: flat float32
// values and their gradient, of the same length.
//
// The encoder owns Data and Grad and hands the optimizer pointers to its
// Params. The optimizer keeps the []*Param it was given, reads Grad and
// writes Data in place on every Step, and never reallocates either; the
// encoder may refill Grad (or point it at another slice of the same
// length) between steps but must keep both lengths, and must not read Data
// while Step runs. The optimizer's own state (moment buffers) is allocated
// once, by New, and kept by position; State and Load name it by Param.Name.
type Param struct {
	// Name identifies the tensor, unique among the params of one
	// optimizer: the PyTorch-like name it has in a checkpoint
	// ("f.0.0.weight", "head.0.bias").
	Name string
	// Shape is the tensor's shape, optional (nil: unknown); when set, its
	// product is len(Data). BiasAndNorm uses it to recognise vectors.
	Shape []int
	// Data holds the values, updated in place by Step.
	Data []float32
	// Grad holds dLoss/dData, read by Step; same length as Data.
	Grad []float32
	// NoDecay marks a bias or a normalisation parameter. When the
	// optimizer's ExcludeBiasAndNorm is on, such a parameter gets no
	// weight decay and (LARS) no trust-ratio adaptation. MarkNoDecay sets
	// it by a rule.
	NoDecay bool
}

// MarkNoDecay sets NoDecay on every param for which rule returns true (it
// never clears it) and returns how many rule matched.
func MarkNoDecay(params []*Param, rule func(*Param) bool) int {
	n := 0
	for _, p := range params {
		if rule(p) {
			p.NoDecay = true
			n++
		}
	}
	return n
}

// BiasAndNorm is the usual rule for the parameters that weight decay
// leaves out (timm's, SimCLR's and BYOL's): it reports whether p is
//
//   - a bias: its name is "bias" or ends in ".bias";
//   - a vector: len(p.Shape) == 1 — every bias and every BatchNorm or
//     LayerNorm scale and shift is one, no convolution or linear weight is;
//   - named as a normalisation layer: a dot-separated part of its name
//     begins with "bn" or contains "norm" ("layer1.0.bn1.weight",
//     "norm.weight", "batchnorm.weight").
//
// A BatchNorm weight named by position, such as "f.0.1.weight" in a
// PyTorch nn.Sequential, is recognised only by its Shape: an encoder that
// does not set Shape must name its normalisation parameters with NameIn.
func BiasAndNorm(p *Param) bool {
	if p.Name == "bias" || strings.HasSuffix(p.Name, ".bias") || len(p.Shape) == 1 {
		return true
	}
	for part := range strings.SplitSeq(p.Name, ".") {
		if strings.HasPrefix(part, "bn") || strings.Contains(part, "norm") {
			return true
		}
	}
	return false
}

// NameIn returns a rule for MarkNoDecay that matches exactly the given
// names: the list an encoder gives of its biases and normalisation
// parameters.
func NameIn(names ...string) func(*Param) bool {
	set := make(map[string]bool, len(names))
	for _, n := range names {
		set[n] = true
	}
	return func(p *Param) bool { return set[p.Name] }
}

// ZeroGrad sets every gradient of params to zero, before the replicas'
// gradients are summed into them.
func ZeroGrad(params []*Param) {
	for _, p := range params {
		clear(p.Grad)
	}
}

// checkParams reports the first param that an optimizer cannot take.
func checkParams(params []*Param) error {
	seen := make(map[string]bool, len(params))
	for i, p := range params {
		switch {
		case p == nil:
			return fmt.Errorf("param %d is nil", i)
		case p.Name == "":
			return fmt.Errorf("param %d has no name", i)
		case seen[p.Name]:
			return fmt.Errorf("param %q appears twice", p.Name)
		case len(p.Grad) != len(p.Data):
			return fmt.Errorf("param %q: %d gradient values for %d values", p.Name, len(p.Grad), len(p.Data))
		}
		seen[p.Name] = true
		if p.Shape != nil {
			n := 1
			for _, d := range p.Shape {
				if d < 0 {
					n = -1
					break
				}
				n *= d
			}
			if n != len(p.Data) {
				return fmt.Errorf("param %q: shape %v does not hold its %d values", p.Name, p.Shape, len(p.Data))
			}
		}
	}
	return nil
}

// checkLens panics when a param's lengths changed since New, which would
// make Step read or write out of bounds of its state.
func checkLens(p *Param, n int) {
	if len(p.Data) != n || len(p.Grad) != n {
		panic(fmt.Sprintf("optim: param %q changed length: %d values and %d gradient values, %d at New", p.Name, len(p.Data), len(p.Grad), n))
	}
}
