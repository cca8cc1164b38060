// Package flows holds contrastream's prebuilt flows and the glue that turns
// a flow spec into a running pipeline.
//
// The prebuilt flows are YAML files embedded in the binary (Names, YAML);
// Load reads one of them, or a user's file, applies --set overrides and
// validates it against the registry of stage kinds that this package fills
// (kinds.go): the dataset source, the augment and collate stages and the
// sinks. Build turns a validated spec into a *pipeline.Flow.
//
// A training flow's stages (encode → queue → loss → optimize) and the
// sinks that take part in its bookkeeping (metrics, checkpoint, knn) share
// typed parts, never string-keyed state: Prepare builds the flow with a
// registry whose kinds are bound to the job's parts (step.go), so each
// stage finds the encoder, queue, loss and optimizer that the stages
// before it built in a typed field. The optimize stage hands every sink
// the step's record (pipeline.StepMetrics) and, after the steps a sink
// asks for (a due checkpoint, an evaluated epoch's end, or any
// pipeline.StateWanter of the user's), a read-only copy of the weights and
// state (StepMetrics.State). The checkpoint and kNN sinks work from those
// copies on their own goroutines. The fine-tune (FineTune, finetune.yaml)
// is the same step with one view and the crossentropy loss.
//
// Before a flow is built, PlanOf opens its source, probes the views' shape
// and estimates the run's peak memory (EstimateMemory: the encoder's
// shards, the loss, the queue, the optimizer, the data in flight, the
// kNN monitor, the garbage collector's headroom). A flow whose estimate is
// over its limit, 90% of the machine's memory unless the spec's
// max_memory says otherwise, is refused with the estimate and what to
// change.
//
// Prepare turns a training flow into a Job that writes into a run folder
// (runfolder.go: every path the sinks name is checked to lie inside it
// before anything is written; a folder that holds a run is refused unless
// JobOptions.Force; a lock keeps it to one process) and resumes from a
// checkpoint (resume.go: the checkpoint must be of the same flow, and the
// run's metrics and kNN records are reconciled with it so that each step
// is logged once after any crash).
//
// The same flows can be assembled in Go from the stages' constructors
// directly; see the package example.
package flows
