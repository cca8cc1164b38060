// Package sinks is where a flow's results go: checkpoints, metrics,
// embeddings, previews, plots and the HTML report, the progress display,
// and datasets written as Parquet.
//
// A sink consumes what the training stages produce and never changes
// training state.
//
// The dataset writer (DatasetWriter, CreateDataset) converts a dataset
// read by package sources (an IDX file, an image folder) into Parquet in
// the Hugging Face image layout, which package sources reads back and the
// Hugging Face datasets library loads as an Image feature and a
// ClassLabel; writes to a path are atomic (temporary file, fsync, rename).
// It is how the built-in dataset is made from Fashion-MNIST.
package sinks
