// Package flows holds contrastream's prebuilt flows and the glue that turns
// a flow spec into a running pipeline.
//
// The prebuilt flows are YAML files embedded in the binary (Names, YAML);
// Load reads one of them, or a user's file, applies --set overrides and
// validates it against the registry of stage kinds that this package fills
// (kinds.go): the dataset source, the augment and collate stages and the
// sinks. Build turns a validated spec into a *pipeline.Flow.
//
// Before a flow is built, PlanOf opens its source, probes the views' shape
// and estimates the run's peak memory (EstimateMemory: the encoder's
// replicas, the loss, the queue, the optimizer, the data in flight, the
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
