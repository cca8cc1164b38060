package loss

import (
	"fmt"
	"math"
)

// TypeCrossEntropy is CrossEntropy's name, as Config.Type and Loss.Name
// spell it.
const TypeCrossEntropy = "crossentropy"

func init() {
	Register(Kind{
		Name:  TypeCrossEntropy,
		Doc:   "softmax cross-entropy of a classifier's logits (one view) against the labels: fine-tuning, the supervised baseline",
		Views: 1,
		Needs: Needs{Labels: true},
		New:   func(Config) (Loss, error) { return &CrossEntropy{}, nil },
		// The scratch of one row of exponentials.
		MemoryBytes: func(_ Config, _, d, _ int) int64 { return saturate(8 * float64(d)) },
	})
}

// CrossEntropy is the softmax cross-entropy of a classifier: Z[0] holds
// the N×D logits of the batch (D classes; an encoder whose head is the
// classifier, see flows.FineTune), and the loss of a valid sample i with
// label y_i is
//
//	L_i = log Σ_c exp(z_ic) − z_iy_i
//
// averaged over the Valid samples, with gradient (softmax(z_i) −
// onehot(y_i))/Valid and zero rows for the padding. It reads one view
// (Kind.Views 1: Z[1] is not read and Grad[1] comes back empty), has no
// temperature and no normalisation (logits, not embeddings), and needs
// the labels: a valid sample's label must be in [0, D). Top1 is the
// fraction of valid samples whose largest logit (the first of equal
// ones) is their label; PosCos and NegCos are 0.
//
// The log-sum-exp is taken in float64 after subtracting the row's
// maximum, as eval.CrossEntropy does. Cost: about 2·N·D exponentials and
// additions, on the calling goroutine (the matrices are small); scratch of
// D float64 kept between calls. Not safe for concurrent use.
type CrossEntropy struct {
	e []float64 // one row's exp(z − max)
}

var _ Loss = (*CrossEntropy)(nil)

// Name returns "crossentropy".
func (*CrossEntropy) Name() string { return TypeCrossEntropy }

// Compute implements Loss.
func (l *CrossEntropy) Compute(in Inputs, out *Outputs) error {
	if err := in.CheckViews(TypeCrossEntropy, 1); err != nil {
		return err
	}
	n, d, rows := in.N, in.D, in.ValidN()
	if len(in.Labels) < rows {
		return fmt.Errorf("loss crossentropy: %d labels for %d samples", len(in.Labels), rows)
	}
	for i, y := range in.Labels[:rows] {
		if y < 0 || y >= int64(d) {
			return fmt.Errorf("loss crossentropy: sample %d of the batch has label %d; the classifier has %d classes (labels 0…%d): make the encoder's out the number of classes", i, y, d, d-1)
		}
	}
	g := grow(out.Grad[0], n*d)
	l.e = grow(l.e, d)
	scale := 1 / float64(rows)
	var sum float64
	correct := 0
	for i := range rows {
		z, gi, y := in.Z[0][i*d:(i+1)*d], g[i*d:(i+1)*d], int(in.Labels[i])
		mx, best := math.Inf(-1), 0
		for c, v := range z {
			if float64(v) > mx {
				mx, best = float64(v), c
			}
		}
		if best == y {
			correct++
		}
		var s float64
		for c, v := range z {
			l.e[c] = math.Exp(float64(v) - mx)
			s += l.e[c]
		}
		sum += mx + math.Log(s) - float64(z[y])
		for c := range z {
			p := l.e[c] / s
			if c == y {
				p--
			}
			gi[c] = float32(p * scale)
		}
	}
	clear(g[rows*d:])
	out.Grad[0], out.Grad[1] = g, out.Grad[1][:0]
	out.Loss = sum * scale
	out.PosCos, out.NegCos = 0, 0
	out.Top1 = float64(correct) * scale
	out.Anchors = rows
	return nil
}
