package optim_test

import (
	"fmt"

	"github.com/contrastream/contrastream/stages/optim"
)

func Example() {
	// The encoder's tensors, by their PyTorch-like names.
	params := []*optim.Param{
		{Name: "f.0.0.weight", Shape: []int{2}, Data: []float32{1, -2}, Grad: make([]float32, 2)},
		{Name: "head.0.bias", Data: []float32{0.5}, Grad: make([]float32, 1)},
	}
	optim.MarkNoDecay(params, optim.NameIn("head.0.bias"))
	cfg := optim.Config{Nesterov: true, ExcludeBiasAndNorm: optim.Bool(true)} // SGD, lr 0.06, momentum 0.9, wd 5e-4
	opt, err := optim.New(cfg, params)
	if err != nil {
		panic(err)
	}
	sched, err := cfg.NewSchedule(4) // cosine over a run of 4 steps
	if err != nil {
		panic(err)
	}
	for step := range 4 {
		copy(params[0].Grad, []float32{0.5, -1})
		params[1].Grad[0] = 1
		opt.Step(sched.At(step))
		fmt.Printf("step %d lr %.4f w %.4f b %.4f\n", step, sched.At(step), params[0].Data, params[1].Data[0])
	}
	// Output:
	// step 0 lr 0.0600 w [0.9429 -1.8859] b 0.3860
	// step 1 lr 0.0512 w [0.8735 -1.7470] b 0.2472
	// step 2 lr 0.0300 w [0.8219 -1.6437] b 0.1440
	// step 3 lr 0.0088 w [0.8038 -1.6077] b 0.1081
}

func ExampleSchedule() {
	s, err := optim.NewSchedule(optim.ScheduleConfig{WarmupSteps: 2}, 0.1, 6)
	if err != nil {
		panic(err)
	}
	for step := range 7 {
		fmt.Printf("%.4f ", s.At(step))
	}
	fmt.Println()
	// Output:
	// 0.0500 0.1000 0.1000 0.0854 0.0500 0.0146 0.0000
}
