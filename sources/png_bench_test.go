package sources

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/png"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/contrastream/contrastream/pipeline"
)

// builtinPNGs returns the first n images of the built-in training split.
func builtinPNGs(b testing.TB, n int) [][]byte {
	data, err := os.ReadFile("builtin/data/train.parquet")
	if err != nil {
		b.Fatal(err)
	}
	ds, err := OpenParquetBytes("train.parquet", data, "", "")
	if err != nil {
		b.Fatal(err)
	}
	defer ds.Close()
	var out [][]byte
	errEnough := errors.New("enough")
	err = Each(context.Background(), ds, StreamConfig{}, func(s pipeline.Sample) error {
		out = append(out, s.Encoded)
		if len(out) == n {
			return errEnough
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		b.Fatal(err)
	}
	return out
}

// BenchmarkDecodePNG compares decode's PNG fast path ("fast") with what it
// did before, image.DecodeConfig then image.Decode ("image/png"), on 256
// Fashion-MNIST images (28×28 gray: one op decodes all 256, a training
// step's worth) and on one 64×47 RGBA image of image/png's encoder.
//
//	go test ./sources -run '^$' -bench DecodePNG -benchmem -benchtime 20x
func BenchmarkDecodePNG(b *testing.B) {
	var buf bytes.Buffer
	if err := png.Encode(&buf, randomImage(rand.New(rand.NewPCG(1, 2)), pngRGBA, 64, 47)); err != nil {
		b.Fatal(err)
	}
	sets := []struct {
		name string
		pngs [][]byte
	}{
		{"builtin-256x28x28gray", builtinPNGs(b, 256)},
		{"64x47rgba", [][]byte{buf.Bytes()}},
	}
	for _, set := range sets {
		b.Run(set.name+"/image-png", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for _, p := range set.pngs {
					if _, _, err := image.DecodeConfig(bytes.NewReader(p)); err != nil {
						b.Fatal(err)
					}
					if _, _, err := image.Decode(bytes.NewReader(p)); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
		b.Run(set.name+"/fast", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for _, p := range set.pngs {
					if _, err := Decode(pipeline.Sample{Encoded: p}, 0); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
