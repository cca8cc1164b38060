package queue_test

import (
	"fmt"
	"math/rand/v2"

	"github.com/contrastream/contrastream/stages/optim"
	"github.com/contrastream/contrastream/stages/queue"
)

func Example() {
	q, err := queue.New(queue.Config{Size: 5, Dim: 1}, rand.NewPCG(1, 0))
	if err != nil {
		panic(err)
	}
	// Three steps of 2 keys each: 6 keys through a queue of 5.
	for step := range 3 {
		if err := q.Push([]float32{float32(10 * step), float32(10*step + 1)}); err != nil {
			panic(err)
		}
	}
	fmt.Println("ordered:", q.Ordered(), "storage:", q.Keys(), "ptr:", q.Ptr())
	// Output:
	// ordered: [1 10 11 20 21] storage: [21 1 10 11 20] ptr: 1
}

func ExampleMomentumUpdateParams() {
	query := []*optim.Param{{Name: "w", Data: []float32{1, 2}}}
	key := []*optim.Param{{Name: "w", Data: make([]float32, 2)}}
	if err := queue.CopyParams(key, query); err != nil { // the key encoder starts as a copy
		panic(err)
	}
	query[0].Data[0] = 3 // the optimizer moves θ
	m, err := queue.Config{MomentumSchedule: queue.Cosine, Momentum: queue.Float(0.5)}.NewMomentum(10)
	if err != nil {
		panic(err)
	}
	if err := queue.MomentumUpdateParams(key, query, m.At(0)); err != nil {
		panic(err)
	}
	fmt.Println(key[0].Data, m.At(5), m.At(10))
	// Output:
	// [2 2] 0.75 1
}
