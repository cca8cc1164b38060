package loss_test

import (
	"fmt"

	"github.com/contrastream/contrastream/stages/loss"
)

func Example() {
	// SimCLR's loss of two samples with 2-dimensional embeddings: each
	// sample's views point the same way, the samples are orthogonal.
	l, err := loss.New(loss.Config{Type: "ntxent"}) // T = 0.5
	if err != nil {
		panic(err)
	}
	in := loss.Inputs{
		Z: [2][]float32{
			{1, 0, 0, 1}, // view 1 of samples 0 and 1
			{2, 0, 0, 3}, // view 2
		},
		N: 2, D: 2,
	}
	var out loss.Outputs // reuse it from step to step
	if err := l.Compute(in, &out); err != nil {
		panic(err)
	}
	fmt.Printf("%s loss %.4f, positive cos %.2f, negative cos %.2f, top-1 %.2f\n",
		l.Name(), out.Loss, out.PosCos, out.NegCos, out.Top1)
	fmt.Printf("dL/dz1 = %.4f\n", out.Grad[0])
	// Output:
	// ntxent loss 0.2395, positive cos 1.00, negative cos 0.00, top-1 1.00
	// dL/dz1 = [0.0000 0.2130 0.2130 0.0000]
}

func ExampleInfoNCE() {
	l, err := loss.NewInfoNCE(loss.InfoNCEConfig{}) // T = 0.2
	if err != nil {
		panic(err)
	}
	in := loss.Inputs{
		Z:     [2][]float32{{1, 0}, {1, 0}}, // one query and its key
		N:     1,
		D:     2,
		Queue: []float32{0, 1, 0, -1}, // two orthogonal negatives
		K:     2,
	}
	var out loss.Outputs
	if err := l.Compute(in, &out); err != nil {
		panic(err)
	}
	// −log e^5 / (e^5 + 2), since the query is T⁻¹ = 5 from its key and
	// orthogonal to both negatives.
	fmt.Printf("loss %.6f, key gradient %d values\n", out.Loss, len(out.Grad[1]))
	// Output:
	// loss 0.013386, key gradient 0 values
}
