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
//   - checkpoints and the metrics log of training; sub-package report draws
//     a run's plots and its HTML page.
package sinks
