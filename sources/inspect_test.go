package sources_test

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sources"
)

func TestInspect(t *testing.T) {
	// binary.parquet: 8 rows in 2 row groups, labels i%3 but row 6's is
	// null, PNGs of 8×6 gray but row 5's image is null.
	ds, err := sources.Open(sources.Config{Path: "testdata/binary.parquet", ImageColumn: "img", LabelColumn: "y"})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	var progress []int64
	s, err := sources.Inspect(context.Background(), ds, 0, func(done int64) { progress = append(progress, done) })
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "binary.parquet" || s.Rows != 8 || s.Chunks != 2 || !s.Labeled || s.Classes != nil {
		t.Errorf("summary %q: %d rows, %d chunks, labeled %v, classes %q", s.Name, s.Rows, s.Chunks, s.Labeled, s.Classes)
	}
	if want := []string{"y: int32", "img: binary"}; !slices.Equal(s.Columns, want) {
		t.Errorf("Columns %q, want %q", s.Columns, want)
	}
	if want := map[int64]int64{0: 2, 1: 3, 2: 2, pipeline.NoLabel: 1}; !maps.Equal(s.Labels, want) {
		t.Errorf("Labels %v, want %v", s.Labels, want)
	}
	if want := map[sources.ImageSize]int64{{W: 8, H: 6, C: 1}: 7}; !maps.Equal(s.Sizes, want) {
		t.Errorf("Sizes %v, want %v", s.Sizes, want)
	}
	if want := map[string]int64{"png": 7, "none": 1}; !maps.Equal(s.Formats, want) {
		t.Errorf("Formats %v, want %v", s.Formats, want)
	}
	if want := []string{"testdata/binary.parquet row 5: no image: null or empty image bytes"}; s.Bad != 1 || !slices.Equal(s.BadExamples, want) {
		t.Errorf("Bad %d %q, want 1 %q", s.Bad, s.BadExamples, want)
	}
	if !slices.Equal(progress, []int64{8}) {
		t.Errorf("progress %v, want [8]", progress)
	}

	t.Run("folder with a file too large to read", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "a.png"), testPNG(t, 0), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "b.png"), make([]byte, 17+1<<20), 0o644); err != nil {
			t.Fatal(err)
		}
		ds, err := sources.Open(sources.Config{Path: dir, MaxPixels: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer ds.Close()
		s, err := sources.Inspect(context.Background(), ds, 100, nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]int64{"png": 1, "unread": 1}; !maps.Equal(s.Formats, want) || s.Bad != 1 || len(s.Sizes) != 1 {
			t.Errorf("Formats %v, Bad %d %q, Sizes %v", s.Formats, s.Bad, s.BadExamples, s.Sizes)
		}
	})
}

func TestSummaryWrite(t *testing.T) {
	s := sources.Summary{
		Name: "x.parquet", Rows: 10, Chunks: 2, Labeled: true, Classes: []string{"cat", "dog"},
		Labels: map[int64]int64{1: 4, 0: 5, pipeline.NoLabel: 1},
		// Equal counts are ordered by width, height, channels.
		Sizes: map[sources.ImageSize]int64{
			{W: 9, H: 9, C: 3}: 2, {W: 8, H: 9, C: 3}: 2, {W: 8, H: 8, C: 3}: 2, {W: 8, H: 8, C: 1}: 2, {W: 1, H: 1, C: 1}: 1, {W: 100, H: 1, C: 1}: 3,
		},
		Formats:     map[string]int64{"png": 9, "none": 1},
		Bad:         1,
		BadExamples: []string{"x.parquet row 3: no image"},
	}
	want := `dataset  x.parquet
rows     10 in 2 chunks
images   none: 1 png: 9
sizes    100×1×1: 3 8×8×1: 2 8×8×3: 2 8×9×3: 2 9×9×3: 2 1×1×1: 1
labels   3
    -1 (missing)      1
     0 cat            5
     1 dog            4
bad      1
  x.parquet row 3: no image
`
	for range 20 { // map order varies from run to run
		var buf bytes.Buffer
		if err := s.Write(&buf); err != nil {
			t.Fatal(err)
		}
		if buf.String() != want {
			t.Fatalf("got\n%s\nwant\n%s", buf.String(), want)
		}
	}
	t.Run("returns the first write error", func(t *testing.T) {
		w := &failingWriter{after: 3}
		if err := s.Write(w); !errors.Is(err, errWrite) || w.calls != 4 {
			t.Fatalf("Write = %v after %d calls, want errWrite after 4 (no write after the first error)", err, w.calls)
		}
	})
}

var errWrite = errors.New("disk full")

// failingWriter fails every write after the first after ones.
type failingWriter struct{ after, calls int }

func (w *failingWriter) Write(p []byte) (int, error) {
	w.calls++
	if w.calls > w.after {
		return 0, errWrite
	}
	return len(p), nil
}
