// Package flows holds contrastream's prebuilt flows and the glue that turns
// a flow spec into a running pipeline.
//
// The prebuilt flows are YAML files embedded in the binary (Names, YAML);
// Load reads one of them, or a user's file, applies --set overrides and
// validates it against the registry of stage kinds that this package fills
// (kinds.go): the dataset source, the augment and collate stages and the
// sinks. Build turns a validated spec into a *pipeline.Flow.
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
