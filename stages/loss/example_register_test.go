package loss_test

import (
	"fmt"
	"math"

	"github.com/contrastream/contrastream/stages/loss"
)

// A new loss is one file like this one: its type, its Compute and its
// registration. "alignment" is a toy: the mean squared distance of the
// L2-normalised positive pairs, Wang and Isola's alignment,
//
//	L = (1/n) Σ_i ‖ẑ1_i − ẑ2_i‖² = (1/n) Σ_i (2 − 2c_i),  c_i = ẑ1_i·ẑ2_i,
//
// whose gradient in closed form (through the normalisation) is
//
//	dL/dz1_i = 2/(n‖z1_i‖) · (c_i ẑ1_i − ẑ2_i),  likewise for z2_i.
//
// It has no negatives (on its own it lets the encoder collapse: a toy),
// no temperature, and needs nothing beyond the embeddings.
func init() {
	loss.Register(loss.Kind{
		Name:  "alignment",
		Doc:   "mean squared distance of the normalised positive pairs (a toy: no negatives)",
		Needs: loss.Needs{}, // no labels, no queue: any flow can use it
		New:   func(loss.Config) (loss.Loss, error) { return alignment{}, nil },
		// MemoryBytes left nil: alignment keeps nothing between calls.
	})
}

type alignment struct{}

var _ loss.Loss = alignment{}

func (alignment) Name() string { return "alignment" }

func (alignment) Compute(in loss.Inputs, out *loss.Outputs) error {
	if err := in.Check("alignment"); err != nil {
		return err
	}
	n, d, rows := in.N, in.D, in.ValidN()
	for v := range 2 {
		if cap(out.Grad[v]) < n*d {
			out.Grad[v] = make([]float32, n*d)
		}
		out.Grad[v] = out.Grad[v][:n*d]
		clear(out.Grad[v]) // padding rows stay 0
	}
	var sum, cosSum float64
	for i := range rows {
		a, b := in.Z[0][i*d:(i+1)*d], in.Z[1][i*d:(i+1)*d]
		na, nb := norm(a), norm(b)
		var c float64
		for j := range d {
			c += float64(a[j]) / na * float64(b[j]) / nb
		}
		sum += 2 - 2*c
		cosSum += c
		s := 2 / float64(rows)
		for j := range d {
			ha, hb := float64(a[j])/na, float64(b[j])/nb
			out.Grad[0][i*d+j] = float32(s / na * (c*ha - hb))
			out.Grad[1][i*d+j] = float32(s / nb * (c*hb - ha))
		}
	}
	out.Loss = sum / float64(rows)
	out.PosCos = cosSum / float64(rows)
	out.NegCos, out.Top1 = 0, 0 // no negatives
	out.Anchors = rows
	return nil
}

// norm is ‖x‖, clamped at 1e-12 as every loss here normalises.
func norm(x []float32) float64 {
	var ss float64
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	return math.Max(math.Sqrt(ss), 1e-12)
}

// Registering a loss makes it a Config.Type like the built-in ones:
// Validate knows its name and New builds it (a flow's YAML takes it too,
// as "type: alignment": see the flows package's Example_method).
func Example_register() {
	fmt.Println(loss.Names())
	l, err := loss.New(loss.Config{Type: "alignment"})
	if err != nil {
		panic(err)
	}
	in := loss.Inputs{
		Z: [2][]float32{
			{1, 0, 0, 2}, // view 1 of samples 0 and 1
			{1, 1, 0, 3}, // view 2: sample 0's is 45° away, sample 1's aligned
		},
		N: 2, D: 2,
	}
	var out loss.Outputs
	if err := l.Compute(in, &out); err != nil {
		panic(err)
	}
	// (2 − 2cos 45°)/2 = 1 − 1/√2.
	fmt.Printf("%s loss %.4f, positive cos %.4f\n", l.Name(), out.Loss, out.PosCos)
	fmt.Printf("dL/dz1 = %.4f\n", out.Grad[0])
	_, err = loss.New(loss.Config{Type: "align"})
	fmt.Println(err)
	_, err = loss.New(loss.Config{Type: "alignment", Temperature: new(0.5)})
	fmt.Println(err)
	// Output:
	// [alignment crossentropy infonce ntxent supcon]
	// alignment loss 0.2929, positive cos 0.8536
	// dL/dz1 = [0.0000 -0.7071 0.0000 0.0000]
	// type: unknown loss "align"; want "alignment", "crossentropy", "infonce", "ntxent" or "supcon"
	// temperature: loss alignment has no temperature: leave it out, got 0.5
}
