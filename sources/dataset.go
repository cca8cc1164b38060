package sources

import (
	"context"
	"fmt"
	"math"

	"github.com/contrastream/contrastream/pipeline"
)

// Dataset is a finite, ordered collection of samples, read one chunk at a
// time so that memory is bounded by a chunk, never by a file.
//
// A chunk is a Parquet row group, an Arrow IPC record batch, a group of files
// of an image folder, or a run of images of an IDX file. Chunks cover the
// dataset in Index order: chunk i holds the samples with Index
// Chunks()[i].First to First+Len-1.
//
// Implementations in this package are safe for concurrent use: ReadChunk may
// be called from several goroutines. The caller that opened a Dataset owns
// it and must Close it; Close must not be called while a ReadChunk runs.
type Dataset interface {
	// Name is a short human name: "train.parquet", "cats-vs-dogs (folder)".
	Name() string
	// Len is the number of samples, > 0 for an opened dataset.
	Len() int64
	// Labeled reports whether samples carry labels. When false every
	// sample's Label is pipeline.NoLabel; when true a single sample may still
	// have NoLabel (a null in a label column).
	Labeled() bool
	// Chunks lists the chunks in Index order. The slice must not be
	// modified.
	Chunks() []Chunk
	// ReadChunk reads chunk i. It returns exactly Chunks()[i].Len samples in
	// Index order, with Epoch 0, each owning its buffers. A structural
	// problem (unreadable file, corrupt row group) is an error naming the
	// file; a bad image is not: its bytes are returned as they are and Decode
	// reports them. (An image file over an image folder's byte limit is not
	// read at all: its sample carries a placeholder Image, for which Decode
	// gives the reason.)
	ReadChunk(ctx context.Context, i int) ([]pipeline.Sample, error)
	// Close releases the files the dataset holds open.
	Close() error
}

// Chunk describes one unit of reading of a Dataset.
type Chunk struct {
	// First is the Index of the chunk's first sample.
	First int64
	// Len is the number of samples in the chunk, > 0.
	Len int64
	// Origin says where the chunk lies, for error messages:
	// "train.parquet row group 3".
	Origin string
}

// ClassNames returns the names of the labels of ds, where the source knows
// them: the sub-folder names of an image folder, or the ClassLabel names a
// Hugging Face Parquet or Arrow file stores in its metadata. Label l is
// named ClassNames(ds)[l]. It returns nil when the names are unknown.
func ClassNames(ds Dataset) []string {
	if n, ok := ds.(interface{ ClassNames() []string }); ok {
		return n.ClassNames()
	}
	return nil
}

// maxPrealloc caps the initial capacity of a slice whose final length comes
// from a file's metadata (a row count in a Parquet footer or an Arrow batch
// header), which a corrupt or crafted file can set to anything, 2^40 say:
// such a slice starts at most this long and grows by append as the data
// actually arrives, so that memory follows the data read, never the count
// a file claims. 64 Ki elements: 5 MiB of Samples.
const maxPrealloc = 1 << 16

// preallocLen is the capacity to give a slice that will hold n elements by
// a file's word: n capped to [0, maxPrealloc].
func preallocLen(n int64) int {
	return int(min(max(n, 0), maxPrealloc))
}

// addRows returns total+rows, the rows of a dataset's files so far plus
// those of one more row group or batch, or an error naming where when
// rows is negative or the sum overflows (a corrupt or crafted count).
func addRows(total, rows int64, where string) (int64, error) {
	if rows < 0 {
		return 0, fmt.Errorf("sources: %s: negative row count %d", where, rows)
	}
	if rows > math.MaxInt64-total {
		return 0, fmt.Errorf("sources: %s: row count %d makes more than 2^63 rows in all: corrupt metadata", where, rows)
	}
	return total + rows, nil
}

// splitRows splits rows samples, the first with Index first, into chunks
// of at most per samples; origin names chunk k, which starts at row off.
func splitRows(first, rows, per int64, origin func(k int, first int64) string) []Chunk {
	var out []Chunk
	for k, off := 0, int64(0); off < rows; k, off = k+1, off+per {
		n := min(per, rows-off)
		out = append(out, Chunk{First: first + off, Len: n, Origin: origin(k, off)})
	}
	return out
}

// checkChunkIndex returns an error if i is not a chunk of ds.
func checkChunkIndex(name string, i, n int) error {
	if i < 0 || i >= n {
		return fmt.Errorf("sources: %s: chunk %d out of range [0, %d)", name, i, n)
	}
	return nil
}
