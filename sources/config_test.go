package sources_test

import (
	"context"
	"errors"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sources"
)

// readAll streams ds once in Index order.
func readAll(t testing.TB, ds sources.Dataset) []pipeline.Sample {
	t.Helper()
	var out []pipeline.Sample
	if err := sources.Each(context.Background(), ds, sources.StreamConfig{}, func(s pipeline.Sample) error {
		out = append(out, s)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// markerOf decodes s and returns its top-left pixel's gray value.
func markerOf(t testing.TB, s pipeline.Sample) uint8 {
	t.Helper()
	img, err := sources.Decode(s, 0)
	if err != nil {
		t.Fatalf("%s: %v", s.Origin, err)
	}
	r, _, _, _ := img.At(img.Bounds().Min.X, img.Bounds().Min.Y).RGBA()
	return uint8(r >> 8)
}

func TestOpen(t *testing.T) {
	// Two copies of hf.parquet make a two-file dataset.
	two := t.TempDir()
	hf, err := os.ReadFile("testdata/hf.parquet")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"b.parquet", "a.parquet"} {
		if err := os.WriteFile(filepath.Join(two, n), hf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		cfg     sources.Config
		n       int64
		chunks  int
		labeled bool
		classes []string
		origin  string  // regexp of sample 1's Origin
		noImage []int64 // rows whose image is null
		jpeg    []int64 // rows whose pixels are not exact
		labels  func(i int64) int64
	}{
		{name: "parquet HF layout", cfg: sources.Config{Path: "testdata/hf.parquet"}, n: 12, chunks: 3, labeled: true,
			classes: testClasses, origin: `^testdata/hf\.parquet row 1$`, jpeg: []int64{jpegRow}},
		{name: "parquet explicit format and columns", cfg: sources.Config{Path: "testdata/hf.parquet", Format: "parquet", ImageColumn: "image", LabelColumn: "label"},
			n: 12, chunks: 3, labeled: true, classes: testClasses, origin: `row 1$`, jpeg: []int64{jpegRow}},
		{name: "parquet binary column int32 labels", cfg: sources.Config{Path: "testdata/binary.parquet", ImageColumn: "img", LabelColumn: "y"},
			n: 8, chunks: 2, labeled: true, origin: `^testdata/binary\.parquet row 1$`, noImage: []int64{5},
			labels: func(i int64) int64 {
				if i == 6 {
					return pipeline.NoLabel
				}
				return i % 3
			}},
		{name: "parquet unlabeled", cfg: sources.Config{Path: "testdata/unlabeled.parquet"}, n: 3, chunks: 1, origin: `row 1$`},
		{name: "parquet binary without label column is unlabeled", cfg: sources.Config{Path: "testdata/binary.parquet", ImageColumn: "img"},
			n: 8, chunks: 2, origin: `row 1$`, noImage: []int64{5}},
		{name: "parquet folder of two files", cfg: sources.Config{Path: two}, n: 24, chunks: 6, labeled: true, classes: testClasses,
			origin: `a\.parquet row 1$`, jpeg: []int64{jpegRow, 12 + jpegRow}},
		{name: "parquet glob", cfg: sources.Config{Path: filepath.Join(two, "*.parquet")}, n: 24, chunks: 6, labeled: true, classes: testClasses,
			origin: `a\.parquet row 1$`, jpeg: []int64{jpegRow, 12 + jpegRow}},
		{name: "arrow IPC file", cfg: sources.Config{Path: "testdata/hf.arrow"}, n: 12, chunks: 3, labeled: true, classes: testClasses,
			origin: `^testdata/hf\.arrow row 1$`, jpeg: []int64{jpegRow}},
		{name: "arrow IPC stream", cfg: sources.Config{Path: "testdata/hf.arrows", Format: "arrow"}, n: 12, chunks: 3, labeled: true, classes: testClasses,
			origin: `^testdata/hf\.arrows row 1$`, jpeg: []int64{jpegRow}},
		{name: "folder of classes", cfg: sources.Config{Path: "testdata/folder"}, n: 12, chunks: 1, labeled: true, classes: testClasses,
			origin: `^testdata/folder/circle/b\.png$`, jpeg: []int64{11},
			labels: func(i int64) int64 { return i / 4 }},
		{name: "flat folder", cfg: sources.Config{Path: "testdata/flat", Format: "folder"}, n: 3, chunks: 1, origin: `^testdata/flat/b\.png$`},
		{name: "idx", cfg: sources.Config{Path: "testdata/idx/images-idx3-ubyte", Labels: "testdata/idx/labels-idx1-ubyte"},
			n: 12, chunks: 1, labeled: true, origin: `^testdata/idx/images-idx3-ubyte image 1$`},
		{name: "idx gzipped", cfg: sources.Config{Path: "testdata/idx/images-idx3-ubyte.gz", Labels: "testdata/idx/labels-idx1-ubyte.gz", Format: "idx"},
			n: 12, chunks: 1, labeled: true, origin: `image 1$`},
		{name: "idx without labels", cfg: sources.Config{Path: "testdata/idx/images-idx3-ubyte.gz"}, n: 12, chunks: 1, origin: `image 1$`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds, err := sources.Open(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer ds.Close()
			if ds.Len() != tt.n || len(ds.Chunks()) != tt.chunks || ds.Labeled() != tt.labeled {
				t.Fatalf("Len %d, %d chunks, labeled %v; want %d, %d, %v", ds.Len(), len(ds.Chunks()), ds.Labeled(), tt.n, tt.chunks, tt.labeled)
			}
			if got := sources.ClassNames(ds); !slices.Equal(got, tt.classes) {
				t.Errorf("ClassNames %q, want %q", got, tt.classes)
			}
			all := readAll(t, ds)
			if int64(len(all)) != tt.n {
				t.Fatalf("streamed %d samples, want %d", len(all), tt.n)
			}
			// Chunks read in reverse order match the stream: random access.
			chunks := ds.Chunks()
			for i := len(chunks) - 1; i >= 0; i-- {
				ss, err := ds.ReadChunk(context.Background(), i)
				if err != nil {
					t.Fatal(err)
				}
				for k, s := range ss {
					if w := all[chunks[i].First+int64(k)]; s.Origin != w.Origin || s.Index != w.Index || string(s.Encoded) != string(w.Encoded) {
						t.Fatalf("chunk %d sample %d: %s, want %s", i, k, s.Origin, w.Origin)
					}
				}
			}
			if !regexp.MustCompile(tt.origin).MatchString(all[1].Origin) {
				t.Errorf("Origin %q does not match %s", all[1].Origin, tt.origin)
			}
			for i, s := range all {
				i := int64(i)
				if s.Index != i {
					t.Fatalf("sample %d has Index %d", i, s.Index)
				}
				want := pipeline.NoLabel
				if tt.labeled {
					want = i % 12 % 3
					if tt.labels != nil {
						want = tt.labels(i)
					}
				}
				if s.Label != want {
					t.Errorf("sample %d: label %d, want %d", i, s.Label, want)
				}
				if slices.Contains(tt.noImage, i) {
					if s.Encoded != nil || s.Image != nil {
						t.Errorf("sample %d: null image came with bytes", i)
					}
					continue
				}
				if (s.Encoded == nil) == (s.Image == nil) {
					t.Fatalf("sample %d: want exactly one of Encoded and Image", i)
				}
				if slices.Contains(tt.jpeg, i) {
					if _, err := sources.Decode(s, 0); err != nil {
						t.Error(err)
					}
					continue
				}
				if m := markerOf(t, s); m != marker(i%12) {
					t.Errorf("sample %d: marker %d, want %d (wrong row?)", i, m, marker(i%12))
				}
			}
		})
	}
}

// TestIDXImage checks the shape of IDX images: rows are the height.
func TestIDXImage(t *testing.T) {
	ds, err := sources.OpenIDX("testdata/idx/images-idx3-ubyte", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	ss, err := ds.ReadChunk(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	g, ok := ss[3].Image.(*image.Gray)
	if !ok || g.Bounds() != image.Rect(0, 0, 5, 7) {
		t.Fatalf("image %T %v, want *image.Gray 5 wide, 7 high", ss[3].Image, ss[3].Image.Bounds())
	}
	if g.GrayAt(0, 0).Y != marker(3) || g.GrayAt(1, 0).Y != 1 || g.GrayAt(0, 1).Y != 5 {
		t.Errorf("pixels in the wrong order: %v", g.Pix[:10])
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		cfg   sources.Config
		field string
		want  string
	}{
		{sources.Config{}, "path", "path: no dataset"},
		{sources.Config{Paths: []string{"a", ""}}, "paths[1]", "paths[1]: empty"},
		{sources.Config{Path: "x", Format: "csv"}, "format", `format: "csv" is not one of`},
		{sources.Config{Path: "x", MaxPixels: -1}, "max_pixels", "max_pixels: -1"},
		{sources.Config{Path: "x", Format: "parquet", Labels: "l"}, "labels", "labels: a labels file is for the idx format"},
		{sources.Config{Path: "x", Format: "folder", ImageColumn: "img"}, "image_column", "image_column: the folder format has no columns"},
		{sources.Config{Path: "x", Format: "idx", LabelColumn: "y"}, "label_column", "label_column: the idx format has no columns"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			err := tt.cfg.Validate()
			if err == nil || !contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want %q", err, tt.want)
			}
			var fe *pipeline.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Errorf("Validate() = %#v, want a *pipeline.FieldError for %s", err, tt.field)
			}
			if _, err := sources.Open(tt.cfg); err == nil || !contains(err.Error(), tt.want) {
				t.Fatalf("Open() = %v, want %q", err, tt.want)
			}
		})
	}
	if err := (sources.Config{Path: "x"}).Validate(); err != nil {
		t.Errorf("zero value with a path: %v", err)
	}
	t.Run("detected format", func(t *testing.T) {
		var fe *pipeline.FieldError
		_, err := sources.Open(sources.Config{Path: "testdata/folder", ImageColumn: "img"})
		if err == nil || !contains(err.Error(), "image_column: the folder format has no columns (detected format folder)") || !errors.As(err, &fe) {
			t.Fatalf("Open() = %v", err)
		}
	})
}

func contains(s, sub string) bool { return regexp.MustCompile(regexp.QuoteMeta(sub)).MatchString(s) }

func TestOpenParquetBytes(t *testing.T) {
	b, err := os.ReadFile("testdata/hf.parquet")
	if err != nil {
		t.Fatal(err)
	}
	ds, err := sources.OpenParquetBytes("builtin:train", b, "", "")
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	all := readAll(t, ds)
	if len(all) != testRows || all[1].Origin != "builtin:train row 1" || all[1].Label != 1 || markerOf(t, all[2]) != marker(2) {
		t.Fatalf("%d samples, sample 1 %s label %d", len(all), all[1].Origin, all[1].Label)
	}
	if !slices.Equal(sources.ClassNames(ds), testClasses) {
		t.Errorf("ClassNames %q", sources.ClassNames(ds))
	}
	if _, err := sources.OpenParquetBytes("junk", []byte("PAR1 not really"), "", ""); err == nil || !contains(err.Error(), "junk: not a readable Parquet file") {
		t.Errorf("junk bytes: %v", err)
	}
}

// TestColumns checks the optional Columns method of Parquet and Arrow
// datasets, which inspection shows.
func TestColumns(t *testing.T) {
	for _, p := range []string{"testdata/hf.parquet", "testdata/hf.arrow", "testdata/hf.arrows"} {
		ds, err := sources.Open(sources.Config{Path: p})
		if err != nil {
			t.Fatal(err)
		}
		c, ok := ds.(interface{ Columns() []string })
		if !ok {
			t.Fatalf("%s: no Columns method", p)
		}
		got := c.Columns()
		if len(got) != 2 || !regexp.MustCompile(`^image: struct<bytes: binary.*path: utf8.*>$`).MatchString(got[0]) || got[1] != "label: int64" {
			t.Errorf("%s: columns %q", p, got)
		}
		ds.Close()
	}
}

// TestConcurrentReadChunk reads every chunk of each test dataset from many
// goroutines at once (run it with -race).
func TestConcurrentReadChunk(t *testing.T) {
	for _, cfg := range []sources.Config{
		{Path: "testdata/hf.parquet"}, {Path: "testdata/hf.arrow"}, {Path: "testdata/hf.arrows"},
		{Path: "testdata/folder"}, {Path: "testdata/idx/images-idx3-ubyte.gz", Labels: "testdata/idx/labels-idx1-ubyte.gz"},
	} {
		t.Run(cfg.Path, func(t *testing.T) {
			ds, err := sources.Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer ds.Close()
			want := readAll(t, ds)
			errc := make(chan error, 8*len(ds.Chunks()))
			for range 8 {
				for i, ch := range ds.Chunks() {
					go func() {
						ss, err := ds.ReadChunk(context.Background(), i)
						for k, s := range ss {
							if w := want[ch.First+int64(k)]; s.Origin != w.Origin || string(s.Encoded) != string(w.Encoded) {
								err = fmt.Errorf("chunk %d sample %d: %s, want %s", i, k, s.Origin, w.Origin)
							}
						}
						errc <- err
					}()
				}
			}
			for range 8 * len(ds.Chunks()) {
				if err := <-errc; err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// TestFolderSymlinkClass reads a class folder that is a symbolic link.
func TestFolderSymlinkClass(t *testing.T) {
	root := t.TempDir()
	abs, err := filepath.Abs("testdata/folder/square")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(abs, filepath.Join(root, "square")); err != nil {
		t.Skip("no symbolic links:", err)
	}
	ds, err := sources.Open(sources.Config{Path: root})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	all := readAll(t, ds)
	if len(all) != 4 || all[1].Origin != filepath.Join(root, "square", "b.png") || markerOf(t, all[1]) != marker(5) {
		t.Fatalf("%d samples, sample 1 %s", len(all), all[1].Origin)
	}
}
