package sinks_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sinks"
)

// Write three 2-dimensional embeddings, read them back and find the
// nearest neighbour of the first.
func ExampleCreateEmbeddings() {
	dir, _ := os.MkdirTemp("", "emb")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "emb.parquet")

	w, err := sinks.CreateEmbeddings(path, sinks.EmbeddingWriterOptions{Info: sinks.EmbeddingInfo{Dim: 2, ClassNames: []string{"cat", "dog"}}})
	if err != nil {
		panic(err)
	}
	w.Write(0, 0, "cat/1.png", []float32{1, 0})
	w.Write(1, 1, "dog/1.png", []float32{0, 1})
	w.Write(2, pipeline.NoLabel, "", []float32{3, 0.5})
	if err := w.Close(); err != nil { // the file appears here, complete
		panic(err)
	}

	e, err := sinks.ReadEmbeddings(path)
	if err != nil {
		panic(err)
	}
	nb, _ := e.Nearest(e.Vector(0), 1, 0)
	fmt.Printf("%d rows of %d %s; nearest to row 0: index %d, cosine %.3f\n", e.N, e.D, e.Info.Kind, e.Index[nb[0].Row], nb[0].Similarity)
	// Output: 3 rows of 2 features; nearest to row 0: index 2, cosine 0.986
}
