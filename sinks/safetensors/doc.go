// Package safetensors reads and writes the safetensors format: an 8-byte
// little-endian header length, a JSON header naming each tensor's dtype,
// shape and byte range (plus an optional "__metadata__" map of strings),
// then the raw little-endian data. Checkpoints (model.safetensors,
// state.safetensors) are written in it, and PyTorch's reference values
// are read from it, so any safetensors reader in any language can load our
// weights.
//
// Read and Decode check the layout as the specification asks and refuse
// what breaks it: tensors that share bytes (aliased), bytes of the data
// that belong to no tensor, offsets outside the data or of the wrong size.
//
// Only the dtypes the project uses are supported: F32, F64 (read as
// float32), I64 and I32 (read as int64).
package safetensors
