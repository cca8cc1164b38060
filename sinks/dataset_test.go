package sinks_test

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sinks"
	"github.com/contrastream/contrastream/sources"
)

func grayImage(i int) *image.Gray {
	g := image.NewGray(image.Rect(0, 0, 4, 3))
	for k := range g.Pix {
		g.Pix[k] = uint8(i + k)
	}
	return g
}

func readBack(t *testing.T, path string) (sources.Dataset, []pipeline.Sample) {
	t.Helper()
	ds, err := sources.Open(sources.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ds.Close() })
	var out []pipeline.Sample
	if err := sources.Each(context.Background(), ds, sources.StreamConfig{}, func(s pipeline.Sample) error {
		out = append(out, s)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return ds, out
}

func TestDatasetWriterRoundTrip(t *testing.T) {
	for _, codec := range []string{"", "snappy", "gzip", "zstd"} {
		t.Run("compression "+codec, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "d.parquet")
			w, err := sinks.CreateDataset(path, sinks.DatasetWriterOptions{RowGroupSize: 4, Compression: codec, ClassNames: []string{"a", "b", "c"}})
			if err != nil {
				t.Fatal(err)
			}
			var want [][]byte
			for i := range 10 {
				b, err := sinks.EncodePNG(grayImage(i))
				if err != nil {
					t.Fatal(err)
				}
				want = append(want, b)
				label := int64(i % 3)
				if i == 9 {
					label = pipeline.NoLabel
				}
				if err := w.Write(b, "p.png", label); err != nil {
					t.Fatal(err)
				}
			}
			if w.Rows() != 10 {
				t.Fatalf("Rows %d", w.Rows())
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			ds, got := readBack(t, path)
			if n := len(ds.Chunks()); n != 3 {
				t.Errorf("%d row groups, want 3 (4, 4, 2)", n)
			}
			if !ds.Labeled() || !slices.Equal(sources.ClassNames(ds), []string{"a", "b", "c"}) {
				t.Errorf("labeled %v, classes %q", ds.Labeled(), sources.ClassNames(ds))
			}
			for i, s := range got {
				wantLabel := int64(i % 3)
				if i == 9 {
					wantLabel = pipeline.NoLabel
				}
				if !bytes.Equal(s.Encoded, want[i]) || s.Label != wantLabel {
					t.Errorf("row %d: %d bytes label %d; want %d bytes label %d", i, len(s.Encoded), s.Label, len(want[i]), wantLabel)
				}
			}
		})
	}
}

// TestDatasetWriterLayout checks the schema that other readers see.
func TestDatasetWriterLayout(t *testing.T) {
	var buf bytes.Buffer
	w, err := sinks.NewDatasetWriter(&buf, sinks.DatasetWriterOptions{ClassNames: []string{"x", "y"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := sinks.EncodePNG(grayImage(0))
	if err := w.Write(b, "cats/1.png", 1); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := file.NewParquetReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	fr, err := pqarrow.NewFileReader(r, pqarrow.ArrowReadProperties{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := fr.Schema()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sc.Field(0).Type.String(), "struct<bytes: binary nullable, path: utf8 nullable>"; got != want {
		t.Errorf("image type %s, want %s", got, want)
	}
	if got := sc.Field(1).Type.String(); sc.Field(1).Name != "label" || got != "int64" {
		t.Errorf("label column %s %s", sc.Field(1).Name, got)
	}
	hf := r.MetaData().KeyValueMetadata().FindValue("huggingface")
	if hf == nil || !strings.Contains(*hf, `"image":{"_type":"Image"}`) || !strings.Contains(*hf, `"label":{"_type":"ClassLabel","names":["x","y"]}`) {
		t.Errorf("huggingface metadata %v", hf)
	}
}

func TestDatasetWriterAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "d.parquet")
	if err := os.WriteFile(path, []byte("old"), 0o640); err != nil {
		t.Fatal(err)
	}
	b, _ := sinks.EncodePNG(grayImage(0))

	w, err := sinks.CreateDataset(path, sinks.DatasetWriterOptions{Unlabeled: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(b, "", pipeline.NoLabel); err != nil {
		t.Fatal(err)
	}
	if old, _ := os.ReadFile(path); string(old) != "old" {
		t.Fatal("the target changed before Close")
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if old, _ := os.ReadFile(path); string(old) != "old" {
		t.Fatal("Abort changed the target")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("Abort left %d files", len(ents))
	}

	w, err = sinks.CreateDataset(path, sinks.DatasetWriterOptions{Unlabeled: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(b, "", pipeline.NoLabel); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("Close left %d files", len(ents))
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want the replaced file's 0640", st.Mode().Perm())
	}
	ds, got := readBack(t, path)
	if ds.Labeled() || len(got) != 1 || got[0].Label != pipeline.NoLabel {
		t.Fatalf("unlabeled dataset read back as labeled %v, %d rows", ds.Labeled(), len(got))
	}
}

func TestDatasetWriterErrors(t *testing.T) {
	b, _ := sinks.EncodePNG(grayImage(0))
	var buf bytes.Buffer
	if _, err := sinks.NewDatasetWriter(&buf, sinks.DatasetWriterOptions{Compression: "lzma"}); err == nil || !strings.Contains(err.Error(), `compression "lzma"`) {
		t.Errorf("compression lzma: %v", err)
	}
	if _, err := sinks.NewDatasetWriter(&buf, sinks.DatasetWriterOptions{RowGroupSize: -1}); err == nil {
		t.Error("negative row group size accepted")
	}
	if _, err := sinks.NewDatasetWriter(&buf, sinks.DatasetWriterOptions{Unlabeled: true, ClassNames: []string{"a"}}); err == nil {
		t.Error("class names for an unlabeled dataset accepted")
	}
	if _, err := sinks.CreateDataset(filepath.Join(t.TempDir(), "no", "such", "dir", "d.parquet"), sinks.DatasetWriterOptions{}); err == nil {
		t.Error("a path in a missing folder accepted")
	}
	w, err := sinks.NewDatasetWriter(&buf, sinks.DatasetWriterOptions{ClassNames: []string{"a", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		img   []byte
		label int64
		want  string
	}{
		{nil, 0, "empty image"},
		{b, 2, "label 2 outside the 2 class names"},
		{b, -2, "label -2"},
	} {
		if err := w.Write(tt.img, "", tt.label); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Write(label %d) = %v, want %q", tt.label, err, tt.want)
		}
	}
	if err := w.WriteSample(pipeline.Sample{Origin: "x row 1"}); err == nil || !strings.Contains(err.Error(), "x row 1: no image") {
		t.Errorf("WriteSample without image: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(b, "", 0); err == nil {
		t.Error("Write after Close accepted")
	}
	u, _ := sinks.NewDatasetWriter(&buf, sinks.DatasetWriterOptions{Unlabeled: true})
	if err := u.Write(b, "", 1); err == nil {
		t.Error("a label for an unlabeled dataset accepted")
	}
}

// TestWriteSampleFromIDX converts the IDX test files through WriteSample,
// as the CLI's ingest does, and checks the pixels survive.
func TestWriteSampleFromIDX(t *testing.T) {
	src, err := sources.Open(sources.Config{Path: "../sources/testdata/idx/images-idx3-ubyte.gz", Labels: "../sources/testdata/idx/labels-idx1-ubyte.gz"})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	path := filepath.Join(t.TempDir(), "idx.parquet")
	w, err := sinks.CreateDataset(path, sinks.DatasetWriterOptions{RowGroupSize: 5})
	if err != nil {
		t.Fatal(err)
	}
	if err := sources.Each(context.Background(), src, sources.StreamConfig{}, w.WriteSample); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	orig := map[int64]pipeline.Sample{}
	sources.Each(context.Background(), src, sources.StreamConfig{}, func(s pipeline.Sample) error { orig[s.Index] = s; return nil })
	_, got := readBack(t, path)
	if len(got) != len(orig) {
		t.Fatalf("%d rows, want %d", len(got), len(orig))
	}
	for _, s := range got {
		img, err := png.Decode(bytes.NewReader(s.Encoded))
		if err != nil {
			t.Fatal(err)
		}
		g, ok := img.(*image.Gray)
		if !ok {
			t.Fatalf("PNG decodes as %T, want *image.Gray", img)
		}
		o := orig[s.Index]
		if !bytes.Equal(g.Pix, o.Image.(*image.Gray).Pix) || s.Label != o.Label {
			t.Fatalf("row %d differs from %s", s.Index, o.Origin)
		}
	}
}

// Converting an IDX dataset to Parquet, as the built-in dataset was made.
func ExampleCreateDataset() {
	ctx := context.Background()
	ds, err := sources.Open(sources.Config{Path: "../sources/testdata/idx/images-idx3-ubyte.gz", Labels: "../sources/testdata/idx/labels-idx1-ubyte.gz"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ds.Close()
	idx, err := sources.Balanced(ctx, ds, 2) // the first 2 samples of each label
	if err != nil {
		fmt.Println(err)
		return
	}
	sub, err := sources.Subset(ds, idx)
	if err != nil {
		fmt.Println(err)
		return
	}
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "train.parquet")
	w, err := sinks.CreateDataset(out, sinks.DatasetWriterOptions{ClassNames: []string{"zero", "one", "two"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := sources.Each(ctx, sub, sources.StreamConfig{}, w.WriteSample); err != nil {
		w.Abort()
		fmt.Println(err)
		return
	}
	if err := w.Close(); err != nil {
		fmt.Println(err)
		return
	}
	back, err := sources.Open(sources.Config{Path: out})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer back.Close()
	fmt.Println(idx, back.Len(), sources.ClassNames(back))
	// Output:
	// [0 1 2 3 4 5] 6 [zero one two]
}
