package sources_test

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"strings"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sources"
)

// A new format is one file like this one: its registration and its
// Dataset. "solid" is a toy: a text file whose first line is "solid" and
// whose every further line, a gray level and a label, is one sample, a
// 4×4 image of that gray.
func init() {
	sources.RegisterFormat(sources.Format{
		Name:  "solid",
		Order: 50, // after the built-in formats
		Magic: func(head []byte) bool { return bytes.HasPrefix(head, []byte("solid\n")) },
		Exts:  []string{".solid"},
		Open:  openSolid,
	})
}

// solidDataset holds the gray levels and labels of a solid file, in one
// chunk.
type solidDataset struct {
	path   string
	grays  []uint8
	labels []int64
	chunks []sources.Chunk
}

func openSolid(_ sources.Config, paths []string) (sources.Dataset, error) {
	if len(paths) != 1 {
		return nil, fmt.Errorf("sources: path: a solid dataset takes one file, got %d paths", len(paths))
	}
	b, err := os.ReadFile(paths[0])
	if err != nil {
		return nil, fmt.Errorf("sources: %w", err)
	}
	d := &solidDataset{path: paths[0]}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for i, l := range lines[1:] {
		var g uint8
		var label int64
		if _, err := fmt.Sscan(l, &g, &label); err != nil {
			return nil, fmt.Errorf("sources: %s line %d: %w", d.path, i+2, err)
		}
		d.grays, d.labels = append(d.grays, g), append(d.labels, label)
	}
	if len(d.grays) == 0 {
		return nil, fmt.Errorf("sources: %s: no samples", d.path)
	}
	d.chunks = []sources.Chunk{{First: 0, Len: int64(len(d.grays)), Origin: d.path}}
	return d, nil
}

func (d *solidDataset) Name() string            { return filepath.Base(d.path) }
func (d *solidDataset) Len() int64              { return int64(len(d.grays)) }
func (d *solidDataset) Labeled() bool           { return true }
func (d *solidDataset) Chunks() []sources.Chunk { return d.chunks }
func (d *solidDataset) Close() error            { return nil }

func (d *solidDataset) ReadChunk(_ context.Context, i int) ([]pipeline.Sample, error) {
	if i != 0 {
		return nil, fmt.Errorf("sources: %s: chunk %d out of range [0, 1)", d.path, i)
	}
	out := make([]pipeline.Sample, len(d.grays))
	for k, g := range d.grays {
		img := image.NewGray(image.Rect(0, 0, 4, 4))
		for p := range img.Pix {
			img.Pix[p] = g
		}
		out[k] = pipeline.Sample{Index: int64(k), Label: d.labels[k], Image: img,
			Origin: fmt.Sprintf("%s line %d", d.path, k+2)}
	}
	return out, nil
}

// Registering a toy format, "solid", and opening a file of it: detected
// from its first bytes, validated and streamed as the built-in formats
// are.
func ExampleRegisterFormat() {
	dir, err := os.MkdirTemp("", "solid")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "grays.solid")
	if err := os.WriteFile(path, []byte("solid\n0 0\n128 1\n255 2\n"), 0o644); err != nil {
		panic(err)
	}

	ds, err := sources.Open(sources.Config{Path: path})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ds.Close()
	fmt.Println(ds.Name(), ds.Len(), "samples")
	err = sources.Each(context.Background(), ds, sources.StreamConfig{}, func(s pipeline.Sample) error {
		img, err := sources.Decode(s, 0)
		if err != nil {
			return err
		}
		fmt.Println("sample", s.Index, "label", s.Label, img.Bounds().Dx(), "×", img.Bounds().Dy(), "gray", img.(*image.Gray).Pix[0])
		return nil
	})
	fmt.Println(err)

	// The checks every format gets: solid takes no columns.
	_, err = sources.Open(sources.Config{Path: path, ImageColumn: "img"})
	fmt.Println(err)
	fmt.Println(sources.FormatNames())
	// Output:
	// grays.solid 3 samples
	// sample 0 label 0 4 × 4 gray 0
	// sample 1 label 1 4 × 4 gray 128
	// sample 2 label 2 4 × 4 gray 255
	// <nil>
	// image_column: the solid format has no columns (detected format solid)
	// [parquet arrow folder idx solid]
}
