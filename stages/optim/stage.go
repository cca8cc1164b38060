package optim

import (
	"context"
	"fmt"
	"time"

	"github.com/contrastream/contrastream/pipeline"
)

// StepHooks connect the optimize stage to the rest of the training step.
type StepHooks struct {
	// Backward fills every parameter's Grad with dL/dθ for e (the encoder
	// back-propagates e.Grad). Required.
	Backward func(e *pipeline.Encoded) error
	// After runs once the optimizer has stepped, with the number of steps
	// taken so far (MoCo's momentum update). It returns the key encoder's
	// momentum for the step's report (0 when none).
	After func(steps int64) (momentum float64, err error)
	// Done runs once the step is complete (After and every e.AfterStep
	// have run, so the whole training state is that of the step), before
	// the encoder is released: the checks of the new state, and the copy
	// of it (m.State) for the sinks that asked for one. It gets the step's
	// metrics as the sinks will (m.Step+1 steps are taken; m.Seconds is
	// the step's time without Done's own) and may set m.State. stop ends
	// the stage after this step, as Stop does.
	Done func(m *pipeline.StepMetrics) (stop bool, err error)
	// Release lets the encoder run the next forward pass. Required.
	Release func()
	// Stop, when closed, ends the stage: the step in progress, if any, is
	// finished and reported, no other is taken, and Run returns nil, so
	// that the stages after it (the sinks) still receive every step taken
	// and the flow ends normally. Optional.
	Stop <-chan struct{}
}

// Stage is the optimize stage: for each *pipeline.Encoded it
// back-propagates, steps the optimizer with the schedule's learning rate,
// runs hooks.After, e.AfterStep and hooks.Done in order, releases the
// encoder for the next step, and sends the step's pipeline.StepMetrics on
// (to the sinks). The step count is the optimizer's (Steps), so a resumed
// run continues the schedule where it stopped.
func Stage(opt Optimizer, sched *Schedule, hooks StepHooks) pipeline.Stage {
	return pipeline.StageFunc(func(ctx context.Context, in *pipeline.Inbox, out *pipeline.Outbox) error {
		rctx := ctx // what a Recv waits on: ctx, or hooks.Stop
		if hooks.Stop != nil {
			var cancel context.CancelFunc
			rctx, cancel = context.WithCancel(ctx)
			defer cancel()
			go func() {
				select {
				case <-hooks.Stop:
					cancel()
				case <-rctx.Done():
				}
			}()
		}
		stopped := func() bool {
			select {
			case <-hooks.Stop: // a nil channel never is
				return ctx.Err() == nil
			default:
				return false
			}
		}
		for {
			v, ok, err := in.Recv(rctx)
			if stopped() {
				return nil // an element received is abandoned: no step taken
			}
			if !ok || err != nil {
				return err
			}
			e, isEnc := v.(*pipeline.Encoded)
			if !isEnc {
				return fmt.Errorf("optimize: got %T, want *pipeline.Encoded", v)
			}
			m, stop, err := step(opt, sched, hooks, e)
			if !stop {
				hooks.Release()
			}
			if err != nil {
				return fmt.Errorf("step %d: %w", e.Metrics.Step, err)
			}
			if err := out.Send(ctx, m); err != nil {
				return err
			}
			if stop {
				return nil
			}
		}
	})
}

func step(opt Optimizer, sched *Schedule, hooks StepHooks, e *pipeline.Encoded) (m pipeline.StepMetrics, stop bool, err error) {
	start := time.Now()
	m = e.Metrics
	if err := hooks.Backward(e); err != nil {
		return m, false, err
	}
	m.Step = int64(opt.Steps())
	m.LR = sched.At(opt.Steps())
	opt.Step(m.LR)
	steps := int64(opt.Steps())
	if hooks.After != nil {
		mom, err := hooks.After(steps)
		if err != nil {
			return m, false, err
		}
		m.Momentum = mom
	}
	for _, f := range e.AfterStep {
		if err := f(); err != nil {
			return m, false, err
		}
	}
	m.Seconds += time.Since(start).Seconds()
	if m.Seconds > 0 {
		m.SamplesPerSec = float64(m.Samples) / m.Seconds
	}
	if hooks.Done != nil {
		if stop, err = hooks.Done(&m); err != nil {
			return m, false, err
		}
	}
	return m, stop, nil
}
