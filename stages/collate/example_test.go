package collate_test

import (
	"context"
	"fmt"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/stages/collate"
)

func Example() {
	c, err := collate.New(collate.Config{BatchSize: 4, Last: collate.Pad})
	if err != nil {
		panic(err)
	}
	// Two epochs of 6 one-pixel pairs, driven by hand.
	in, out := make(chan any, 12), make(chan any, 12)
	for e := range 2 {
		for i := range 6 {
			v := pipeline.View{C: 1, H: 1, W: 1, Data: []float32{float32(i)}}
			in <- pipeline.Pair{Index: int64(i), Epoch: e, Views: [2]pipeline.View{v, v}}
		}
	}
	close(in)
	if err := c.Stage().Run(context.Background(), pipeline.NewInbox(in, nil), pipeline.NewOutbox(out, nil)); err != nil {
		panic(err)
	}
	close(out)
	for v := range out {
		b := v.(*pipeline.Batch)
		fmt.Printf("step %d epoch %d indices %v valid %d\n", b.Step, b.Epoch, b.Indices, b.Valid)
	}
	// Output:
	// step 0 epoch 0 indices [0 1 2 3] valid 4
	// step 1 epoch 0 indices [4 5 0 1] valid 2
	// step 2 epoch 1 indices [0 1 2 3] valid 4
	// step 3 epoch 1 indices [4 5 0 1] valid 2
}
