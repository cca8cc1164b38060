// Package optim holds the optimizers of the training step's optimize stage —
// SGD with momentum (optionally Nesterov), LARS and AdamW — with weight
// decay that can leave biases and normalisation parameters out, and the
// learning-rate schedules (cosine decay with linear warm-up, constant).
//
// Everything is plain Go over float32 slices. The encoder hands the
// optimizer its trainable tensors as []*Param (a name, the values, their
// gradient); the optimizer updates the values in place:
//
//	params := enc.Params()                      // []*optim.Param, owned by the encoder
//	optim.MarkNoDecay(params, optim.BiasAndNorm) // or NameIn(the encoder's list)
//	opt, err := optim.New(cfg, params)          // state allocated here, once
//	sched, err := cfg.NewSchedule(totalSteps)
//	for step := range totalSteps {
//		// … replicas back-propagate, their gradients summed into p.Grad …
//		opt.Step(sched.At(step))                 // no allocation
//	}
//
// The update rules follow PyTorch exactly where PyTorch has the optimizer
// (torch.optim.SGD, torch.optim.AdamW, torch.optim.lr_scheduler.
// CosineAnnealingLR), and SimCLR's LARSOptimizer (google-research/simclr,
// lars_optimizer.py, classic momentum) for LARS; each type's doc spells its
// formula out. Arithmetic is float32 element by element, as PyTorch's CPU
// kernels do, with the scalar factors (learning rate, bias corrections)
// computed in float64 and rounded once; norms (LARS) accumulate in float64.
//
// State and Load expose the moments for checkpoints, under the names
// "optim.step", "optim.momentum.<param>", "optim.adam.m.<param>" and
// "optim.adam.v.<param>", so that a resumed run continues bit for bit.
//
// Nothing here is safe for concurrent use: the optimize stage calls Step
// while no replica reads the parameters, then publishes the new weights.
package optim
