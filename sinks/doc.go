// Package sinks is where a flow's results go. A sink consumes what the
// stages before it produce and never changes training state.
//
// Today it holds:
//
//   - the dataset writer (DatasetWriter, CreateDataset), which writes images
//     and labels as Parquet in the Hugging Face image layout, which package
//     sources reads back and the Hugging Face datasets library loads as an
//     Image feature and a ClassLabel; writes to a path are atomic
//     (temporary file, fsync, rename). The built-in dataset was made with it.
//   - pictures: ViewImage turns a normalised view back into an image, Grid
//     lays images out for a preview, WritePNG writes one atomically.
//   - the progress display (Progress) of long commands.
//   - embeddings (EmbeddingWriter, CreateEmbeddings, ReadEmbeddings): one
//     row per sample (index, label, path, embedding as
//     fixed_size_list<float32>[D]) in Parquet, read back with checks that
//     name the file and column, and searched by cosine (Nearest).
//   - checkpoints (WriteCheckpoint, ReadCheckpoint) and the metrics log of
//     training; sub-package report draws a run's plots and its HTML page.
//
// # Testing aid: a slow checkpoint write
//
// If the environment variable CONTRASTREAM_TEST_CHECKPOINT_DELAY holds a Go
// duration ("20ms"), WriteCheckpoint sleeps that long after each file it
// writes and before each rename, so that a crash test can kill the process
// (SIGKILL) in the middle of a write and check that the last good
// checkpoint survives. It is read once, at the first WriteCheckpoint;
// unset, unparsable or negative, it means no delay. It is meant for tests
// only: never set it in production.
package sinks
