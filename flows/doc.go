// Package flows holds contrastream's prebuilt flows and the glue that turns
// a flow spec into a running pipeline.
//
// The prebuilt flows are YAML files embedded in the binary (Names, YAML);
// Load reads one of them, or a user's file, applies --set overrides and
// validates it against the registry of stage kinds that this package fills
// (kinds.go): the dataset source, the augment and collate stages and the
// sinks. Build turns a validated spec into a *pipeline.Flow.
//
// The same flows can be assembled in Go from the stages' constructors
// directly; see the package example.
package flows
