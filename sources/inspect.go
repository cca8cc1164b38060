package sources

import (
	"cmp"
	"context"
	"fmt"
	"image"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/contrastream/contrastream/pipeline"
)

// Summary describes a dataset as Inspect found it. Its maps are owned by
// whoever holds the Summary.
type Summary struct {
	// Name is the dataset's Name.
	Name string
	// Rows is the number of samples, the dataset's Len.
	Rows int64
	// Chunks is the number of chunks (row groups, record batches, runs of
	// files or images).
	Chunks int
	// Labeled reports whether the dataset has labels.
	Labeled bool
	// Columns lists the dataset's columns and their types, where the
	// format has columns (Parquet, Arrow).
	Columns []string
	// Classes names the labels where the dataset knows them; see
	// ClassNames.
	Classes []string
	// Labels counts the samples of each label (NoLabel for a missing one).
	Labels map[int64]int64
	// Sizes counts the images of each width × height × channels, among the
	// images that decode.
	Sizes map[ImageSize]int64
	// Formats counts the samples of each encoding, bad ones included:
	// "png" and "jpeg" (as their headers say), "raw" (pixels from the
	// source, as IDX), "none" (no bytes: a null image), "unread" (a file
	// over an image folder's byte limit), "unknown".
	Formats map[string]int64
	// Bad counts the samples that would be skipped.
	Bad int64
	// BadExamples gives the reasons of the first 10 bad samples, each
	// naming its sample's Origin.
	BadExamples []string
}

// ImageSize is an image's width, height and channel count.
type ImageSize struct {
	// W and H are the width and height in pixels.
	W, H int
	// C is the channel count: 1 for gray images, 3 for colour ones.
	C int
}

// String returns "W×H×C".
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
		img, format, err := decode(smp, maxPixels)
		s.Formats[format]++
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

// Write prints s for a person to read, deterministically: formats and
// labels in sorted order, sizes by decreasing count, then by width, height
// and channels. It returns the first error of w. The dataset's strings
// (name, columns, class names, the bad samples' origins) are written as
// they are: for a terminal, escape them first (the CLI's inspect uses
// sinks.Printable).
func (s Summary) Write(w io.Writer) error {
	var err error
	p := func(format string, args ...any) {
		if err == nil {
			_, err = fmt.Fprintf(w, format, args...)
		}
	}
	p("dataset  %s\nrows     %d in %d chunks\n", s.Name, s.Rows, s.Chunks)
	if len(s.Columns) > 0 {
		p("columns  %s\n", strings.Join(s.Columns, "; "))
	}
	p("images  ")
	for _, f := range slices.Sorted(maps.Keys(s.Formats)) {
		p(" %s: %d", f, s.Formats[f])
	}
	p("\nsizes   ")
	sizes := slices.SortedFunc(maps.Keys(s.Sizes), func(a, b ImageSize) int {
		return cmp.Or(cmp.Compare(s.Sizes[b], s.Sizes[a]), cmp.Compare(a.W, b.W), cmp.Compare(a.H, b.H), cmp.Compare(a.C, b.C))
	})
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
			if l >= 0 && l < int64(len(s.Classes)) {
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
	return err
}
