// Package pipeline is contrastream's streaming runtime.
//
// A flow is a chain of stages connected by bounded channels:
//
//	source ──► augment ──► collate ──► … ──► sinks
//
// Each Stage receives a context, an Inbox and an Outbox and returns an
// error. The runner owns the channels, runs every stage in its own
// goroutine (or pool of goroutines) under one context, cancels them all on
// the first fatal error, turns panics into errors, and returns only after
// every goroutine it started has exited.
//
// The elements that cross package boundaries are defined here: Sample (what
// a source emits), Pair (two augmented views of one sample), Batch (a
// fixed-shape batch of pairs), Encoded (a batch's embeddings on their way
// through a training step: the stages fill in their gradient, negatives
// and figures) and StepMetrics (what a step hands the sinks, with a
// read-only StepState when a sink asks for one: see StateWanter).
//
// Per-sample failures (SkipError) are counted by the flow's Skips and do
// not stop it until a limit is passed; anything else is fatal.
//
// Inside a stage, a parallel loop (the encoder's replicas, the loss's
// rows, the kNN monitor's queries, the linear probe's blocks) runs its
// tasks through the project's one fan-out: Team, or its one-shot forms
// ForEach, ForEachContext and Parallel. A panic in a task comes back as a
// *PanicError with the stack, the lowest task's error is returned, and no
// goroutine outlives the call; parallel.go states the contract under which
// a loop's result does not depend on the number of workers.
//
// The package also holds the flow spec (YAML), the registry of stage kinds
// and per-stage metrics. It knows no model: embeddings, gradients and
// training state cross it as plain float32 arrays, and what a training
// step's stages share (the encoder, the optimizer) is typed by the package
// that builds the flow (flows), not looked up here.
package pipeline
