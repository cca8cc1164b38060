package sources

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/contrastream/contrastream/pipeline"
)

// Summary describes a dataset as Inspect found it.
type Summary struct {
	Name    string
	Rows    int64
	Chunks  int
	Labeled bool
	// Columns lists the dataset's columns and their types, where the
	// format has columns (Parquet, Arrow).
	Columns []string
	Classes []string
	// Labels counts the samples of each label (NoLabel for a missing one).
	Labels map[int64]int64
	// Sizes counts the images of each width × height × channels.
	Sizes map[ImageSize]int64
	// Formats counts the images of each encoding ("png", "jpeg", "raw").
	Formats map[string]int64
	// Bad counts the samples that would be skipped, and BadExamples names
	// the first few with their reasons.
	Bad         int64
	BadExamples []string
}

// ImageSize is an image's width, height and channel count.
type ImageSize struct{ W, H, C int }

func (s ImageSize) String() string { return fmt.Sprintf("%d×%d×%d", s.W, s.H, s.C) }

// Inspect reads every sample of ds once and decodes each image, to count
// labels, image sizes, formats and bad samples (those Decode rejects, with
// the pixel limit maxPixels; 0 means DefaultMaxPixels). progress, when not
// nil, is called with the number of samples read so far.
func Inspect(ctx context.Context, ds Dataset, maxPixels int, progress func(done int64)) (Summary, error) {
	s := Summary{Name: ds.Name(), Rows: ds.Len(), Chunks: len(ds.Chunks()), Labeled: ds.Labeled(),
		Classes: ClassNames(ds), Labels: map[int64]int64{}, Sizes: map[ImageSize]int64{}, Formats: map[string]int64{}}
	if c, ok := ds.(interface{ Columns() []string }); ok {
		s.Columns = c.Columns()
	}
	var done int64
	err := Each(ctx, ds, StreamConfig{}, func(smp pipeline.Sample) error {
		done++
		if progress != nil && done%1000 == 0 {
			progress(done)
		}
		s.Labels[smp.Label]++
		format := "raw"
		if smp.Image == nil {
			_, f, err := image.DecodeConfig(bytes.NewReader(smp.Encoded))
			if err != nil {
				f = "unknown"
			}
			format = f
		}
		s.Formats[format]++
		img, err := Decode(smp, maxPixels)
		if err != nil {
			s.Bad++
			if len(s.BadExamples) < 10 {
				s.BadExamples = append(s.BadExamples, err.Error())
			}
			return nil
		}
		b := img.Bounds()
		s.Sizes[ImageSize{b.Dx(), b.Dy(), channels(img)}]++
		return nil
	})
	if progress != nil {
		progress(done)
	}
	return s, err
}

// channels is 1 for gray images and 3 for colour ones.
func channels(img image.Image) int {
	switch img.(type) {
	case *image.Gray, *image.Gray16:
		return 1
	}
	return 3
}

// Write prints s for a person to read.
func (s Summary) Write(w io.Writer) error {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("dataset  %s\nrows     %d in %d chunks\n", s.Name, s.Rows, s.Chunks)
	if len(s.Columns) > 0 {
		p("columns  %s\n", strings.Join(s.Columns, "; "))
	}
	p("images  ")
	for _, f := range slices.Sorted(maps.Keys(s.Formats)) {
		p(" %s: %d", f, s.Formats[f])
	}
	p("\nsizes   ")
	sizes := slices.SortedFunc(maps.Keys(s.Sizes), func(a, b ImageSize) int { return int(s.Sizes[b] - s.Sizes[a]) })
	for i, z := range sizes {
		if i == 8 {
			p(" … (%d sizes)", len(sizes))
			break
		}
		p(" %s: %d", z, s.Sizes[z])
	}
	p("\n")
	if !s.Labeled {
		p("labels   none\n")
	} else {
		p("labels   %d\n", len(s.Labels))
		for _, l := range slices.Sorted(maps.Keys(s.Labels)) {
			name := ""
			if l >= 0 && int(l) < len(s.Classes) {
				name = s.Classes[l]
			}
			if l == pipeline.NoLabel {
				name = "(missing)"
			}
			p("  %4d %-14s %d\n", l, name, s.Labels[l])
		}
	}
	p("bad      %d\n", s.Bad)
	for _, e := range s.BadExamples {
		p("  %s\n", e)
	}
	return nil
}
