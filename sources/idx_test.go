package sources_test

import (
	"context"
	"image"
	"os"
	"path/filepath"
	"testing"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sources"
)

// FuzzIDX opens arbitrary bytes as an IDX images file and labels file:
// the reader must return an error or a dataset whose every chunk reads,
// never panic, hang or allocate what the header claims without checking.
//
//	go test -run=^$ -fuzz=FuzzIDX -fuzztime=60s ./sources/
func FuzzIDX(f *testing.F) {
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	imgs, labs := read("testdata/idx/images-idx3-ubyte"), read("testdata/idx/labels-idx1-ubyte")
	f.Add(imgs, labs)
	f.Add(read("testdata/idx/images-idx3-ubyte.gz"), read("testdata/idx/labels-idx1-ubyte.gz"))
	f.Add(imgs, []byte{})
	f.Add(imgs[:len(imgs)-1], labs)
	f.Add(labs, imgs)
	f.Add(idxImages(0, 3, 3), idxLabels(0))
	f.Add(idxImages(2, 0, 5), idxLabels(2))
	// One folder for the whole run (each fuzz worker is a process of its
	// own): t.TempDir per input would cost more than the reading.
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, imgs, labs []byte) {
		ip, lp := filepath.Join(dir, "images"), ""
		if err := os.WriteFile(ip, imgs, 0o644); err != nil {
			t.Fatal(err)
		}
		if len(labs) > 0 {
			lp = filepath.Join(dir, "labels")
			if err := os.WriteFile(lp, labs, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		const maxPixels = 1 << 16
		ds, err := sources.OpenIDX(ip, lp, maxPixels)
		if err != nil {
			return
		}
		defer ds.Close()
		if ds.Len() <= 0 || (lp != "") != ds.Labeled() {
			t.Fatalf("Len %d, labeled %v", ds.Len(), ds.Labeled())
		}
		var n int64
		err = sources.Each(context.Background(), ds, sources.StreamConfig{}, func(s pipeline.Sample) error {
			if s.Index != n {
				t.Fatalf("Index %d, want %d", s.Index, n)
			}
			n++
			g := s.Image.(*image.Gray)
			if b := g.Bounds(); b.Dx()*b.Dy() != len(g.Pix) || b.Dx()*b.Dy() > maxPixels || b.Empty() {
				t.Fatalf("image %v with %d pixels", b, len(g.Pix))
			}
			if _, err := sources.Decode(s, maxPixels); err != nil {
				t.Fatal(err)
			}
			return nil
		})
		if err != nil || n != ds.Len() {
			t.Fatalf("streamed %d of %d: %v", n, ds.Len(), err)
		}
	})
}
