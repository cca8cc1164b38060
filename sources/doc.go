// Package sources reads datasets as streams of samples.
//
// A Dataset is a finite, ordered collection of pipeline.Sample read one
// chunk at a time, so that memory is bounded by a chunk, never by a file:
//
//	format   chunk                       sample
//	parquet  a row group                 Encoded: PNG/JPEG bytes, as stored
//	arrow    a record batch (IPC file    Encoded
//	         or stream format)
//	folder   64 image files              Encoded: the file's bytes
//	idx      about 1 MiB of images       Image: *image.Gray (raw pixels)
//
// Open dispatches on Config.Format, or detects it from the files' first
// bytes, to a registered Format (format.go). Parquet and Arrow datasets take the Hugging Face image layout
// (image: struct<bytes: binary, path: string>, label: int64 or int32) or a
// plain binary column, with configurable column names, across many files
// or a glob; the label is optional. A folder holds one sub-folder per class
// (labels 0..n-1 in sorted order of the names, which ClassNames returns) or
// unlabeled images. IDX is the MNIST format, gzipped or not.
//
// Every sample has a stable Index, its row number over all of the dataset's
// files in sorted order, which shuffling and sharding never change; a Label
// or pipeline.NoLabel; and an Origin naming its file and row for messages.
//
// # Adding a format
//
// Each format registers itself with RegisterFormat from an init function
// in its own file (parquet.go, arrow.go, folder.go, idx.go): its name, its
// place in detection (Order), how its files are recognised (Magic, Exts,
// DetectDir), whether it takes columns or a labels file, and its Open,
// which returns a Dataset. Config.Validate, detection, Open, the CLI's
// --format and flows.OpenDataset then know it; nothing else changes. A
// new format is one new file plus its test: ExampleRegisterFormat
// (example_format_test.go) is one, a toy format of solid gray images.
//
// # Streaming
//
// NewStage (in a flow) and Each (without a runner) stream a dataset under a
// StreamConfig: epochs, seeded shuffling and sharding. Epoch e's order
// derives from (Seed, e) only: the chunks are permuted, then the rows of
// consecutive groups of chunks (at least ShuffleRows rows) are permuted
// together. Shard i of n takes the samples with Index % n == i, so shards
// are disjoint, cover the dataset, and each shard's order is the unsharded
// order with the other shards' samples left out, whatever the number of
// workers. Every shard reads every chunk, though: n shards read the
// dataset n times over (see StreamConfig.Shard for when to split by file
// instead). StartEpoch and Offset resume a stream where a checkpoint left
// it.
//
// # Errors
//
// A structural problem (a file that is missing, truncated or not in the
// format, a missing or wrongly typed column, an IDX header that does not
// match the file, an empty dataset) is one error naming the file and column,
// returned by Open before anything streams, or by ReadChunk for a damaged
// row group. Readers never panic on bad files: the Arrow and Parquet
// libraries' panics are turned into errors. Nor do they trust the counts a
// file states for memory: a Parquet footer whose row count differs from
// its columns' value counts is rejected at Open, and no slice is
// pre-allocated from a stated count beyond a small cap, so a file that
// claims 2^40 rows and holds 5 costs 5 rows, then an error.
//
// A bad sample is not a structural problem. Sources do not decode images:
// they emit every row as it is, including rows whose image is null or empty
// (their Encoded is nil). Decode, which runs later in the augmentation pool,
// reports each bad sample (no bytes, not a PNG or JPEG, zero size, over the
// pixel limit or the byte limit, corrupt) as a *pipeline.SkipError naming
// its Origin, for the flow to count against its limit. Decode checks the
// image's size from its header before decoding it, in pixels and in the
// bytes its decoding allocates (DecodedBytesPerPixel × the pixel limit: a
// 16-bit PNG takes 8 bytes a pixel, a progressive JPEG up to 24), so a
// decompression bomb costs nothing. An
// image folder does not even read a file larger than the pixel limit
// allows (16 bytes per pixel plus 1 MiB): its sample carries a placeholder
// for which Decode gives that reason.
//
// # Costs
//
// Opening reads metadata only (Parquet footers, IDX headers, folder
// listings), except for Arrow IPC, whose record batches are each read once
// to count their rows, and gzipped IDX files, decompressed once into an
// anonymous temporary file. Reading a Parquet row group opens the file
// anew, reads the image bytes and label columns only (not the image paths)
// in batches of a few thousand rows, and copies each batch's bytes into one
// buffer that its samples share:
// hundreds of thousands of 28×28 PNG samples per second on one core
// (BenchmarkParquetRead). The datasets of this package are safe for
// concurrent use.
//
// Balanced and Subset select a balanced slice of a labeled dataset, as the
// built-in dataset is a slice of Fashion-MNIST; package sinks writes
// datasets back as Parquet.
package sources
