package sources_test

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sinks"
	"github.com/contrastream/contrastream/sources"
)

// TestBadInput opens (and, if that works, streams) broken datasets: each
// must fail with one error naming the file, never panic or hang.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	at := func(name string) string { return filepath.Join(dir, name) }
	write := func(name string, b []byte) string {
		t.Helper()
		p := at(name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	read := func(p string) []byte {
		t.Helper()
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	hf := read("testdata/hf.parquet")
	arrowFile := read("testdata/hf.arrow")
	arrowStream := read("testdata/hf.arrows")
	imgs, labs := idxImages(4, 3, 2), idxLabels(4)
	set32 := func(b []byte, off int, v uint32) []byte {
		b = append([]byte(nil), b...)
		binary.BigEndian.PutUint32(b[off:], v)
		return b
	}

	// An empty Parquet file: a schema and no rows.
	w, err := sinks.CreateDataset(at("empty.parquet"), sinks.DatasetWriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// A gzip-compressed Parquet file with a damaged row group.
	w, err = sinks.CreateDataset(at("damaged.parquet"), sinks.DatasetWriterOptions{Compression: "gzip", RowGroupSize: 6})
	if err != nil {
		t.Fatal(err)
	}
	for i := range int64(12) {
		if err := w.Write(testPNG(t, i), "", 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	damaged := read(at("damaged.parquet"))
	for k := 40; k < 200; k++ {
		damaged[k] ^= 0x55
	}
	write("damaged.parquet", damaged)

	tests := []struct {
		name string
		cfg  sources.Config
		file string   // the file the error must name
		want []string // more text the error must hold
	}{
		{"parquet truncated", sources.Config{Path: write("trunc.parquet", hf[:len(hf)/2])}, "trunc.parquet", []string{"not a readable Parquet file"}},
		{"parquet footer cut", sources.Config{Path: write("cut.parquet", hf[:len(hf)-3])}, "cut.parquet", []string{"not a readable Parquet file"}},
		{"not parquet", sources.Config{Path: write("text.parquet", []byte("hello, world\n"))}, "text.parquet", []string{"not a readable Parquet file"}},
		{"not parquet, format set", sources.Config{Path: write("text.bin", []byte("hello, world\n")), Format: "parquet"}, "text.bin", []string{"not a readable Parquet file"}},
		{"unknown format", sources.Config{Path: write("text.txt", []byte("hello"))}, "text.txt", []string{"cannot tell its format"}},
		{"missing file", sources.Config{Path: at("nothere.parquet")}, "nothere.parquet", []string{"no such file"}},
		{"glob without match", sources.Config{Path: at("*.nothing")}, "*.nothing", []string{"no file matches"}},
		{"missing image column", sources.Config{Path: "testdata/hf.parquet", ImageColumn: "pixels"}, "testdata/hf.parquet", []string{`no image column "pixels"`, `"image", "label"`}},
		{"image column of wrong type", sources.Config{Path: "testdata/hf.parquet", ImageColumn: "label"}, "testdata/hf.parquet", []string{`column "label" has type int64`}},
		{"label column of wrong type", sources.Config{Path: "testdata/binary.parquet", ImageColumn: "img", LabelColumn: "img"}, "testdata/binary.parquet", []string{`column "img" has type binary; want an integer`}},
		{"explicit label column missing", sources.Config{Path: "testdata/binary.parquet", ImageColumn: "img", LabelColumn: "label"}, "testdata/binary.parquet", []string{`no label column "label"`}},
		{"files disagree on labels", sources.Config{Paths: []string{"testdata/hf.parquet", "testdata/unlabeled.parquet"}}, "testdata/unlabeled.parquet", []string{"label column"}},
		{"empty parquet", sources.Config{Path: at("empty.parquet")}, "empty.parquet", []string{"empty dataset"}},
		{"damaged row group", sources.Config{Path: at("damaged.parquet")}, "damaged.parquet", nil},
		{"arrow file truncated", sources.Config{Path: write("trunc.arrow", arrowFile[:len(arrowFile)-20])}, "trunc.arrow", nil},
		{"arrow stream truncated", sources.Config{Path: write("trunc.arrows", arrowStream[:len(arrowStream)/2])}, "trunc.arrows", nil},
		{"arrow garbage", sources.Config{Path: write("junk.arrow", []byte("ARROW1\x00\x00garbage garbage garbage"))}, "junk.arrow", nil},
		{"arrow missing column", sources.Config{Path: "testdata/hf.arrow", ImageColumn: "x"}, "testdata/hf.arrow", []string{`no image column "x"`}},
		{"idx wrong magic", sources.Config{Path: write("magic-idx3-ubyte", set32(imgs, 0, 0x12345678)), Format: "idx"}, "magic-idx3-ubyte", []string{"wrong magic number 0x12345678"}},
		{"idx wrong data type", sources.Config{Path: write("type-idx3-ubyte", set32(imgs, 0, 0x0d03)), Format: "idx"}, "type-idx3-ubyte", []string{"data type 0x0d"}},
		{"idx wrong dimension count", sources.Config{Path: write("labels-as-images", labs), Format: "idx"}, "labels-as-images", []string{"1 dimensions, want 3"}},
		{"idx labels with wrong dimension count", sources.Config{Path: write("i-idx3-ubyte", imgs), Labels: write("l-idx1-ubyte", imgs)}, "l-idx1-ubyte", []string{"3 dimensions, want 1"}},
		{"idx short body", sources.Config{Path: write("short-idx3-ubyte", imgs[:len(imgs)-1])}, "short-idx3-ubyte", []string{"short body", "4×3×2, 24 bytes", "holds 23"}},
		{"idx short header", sources.Config{Path: write("hdr-idx3-ubyte", imgs[:9]), Format: "idx"}, "hdr-idx3-ubyte", []string{"short header"}},
		{"idx trailing data", sources.Config{Path: write("long-idx3-ubyte", append(imgs, 0))}, "long-idx3-ubyte", []string{"trailing data"}},
		{"idx gzipped short body", sources.Config{Path: write("short.gz", gz(imgs[:len(imgs)-5]))}, "short.gz", []string{"short body"}},
		{"idx gzipped trailing data", sources.Config{Path: write("long.gz", gz(append(imgs, 1, 2, 3)))}, "long.gz", []string{"trailing data"}},
		{"idx gzip corrupt", sources.Config{Path: write("bad.gz", append(gz(imgs)[:20], 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)), Format: "idx"}, "bad.gz", []string{"bad gzip data"}},
		{"idx label count", sources.Config{Path: write("n-idx3-ubyte", imgs), Labels: write("n-idx1-ubyte", idxLabels(5))}, "n-idx1-ubyte", []string{"5 labels", "4 images"}},
		{"idx no images", sources.Config{Path: write("zero-idx3-ubyte", idxImages(0, 3, 2))}, "zero-idx3-ubyte", []string{"empty dataset"}},
		{"idx zero-size images", sources.Config{Path: write("zs-idx3-ubyte", idxImages(2, 0, 2))}, "zs-idx3-ubyte", []string{"zero-size"}},
		{"idx images over max_pixels", sources.Config{Path: write("big-idx3-ubyte", imgs), MaxPixels: 5}, "big-idx3-ubyte", []string{"3×2, over the limit of 5"}},
		{"idx huge header", sources.Config{Path: write("huge-idx3-ubyte", set32(set32(set32(imgs, 4, 1<<31), 8, 1<<31), 12, 1<<31)), Format: "idx", MaxPixels: 1 << 62}, "huge-idx3-ubyte", []string{"too large"}},
		{"idx missing labels file", sources.Config{Path: "testdata/idx/images-idx3-ubyte", Labels: at("nolabels")}, "nolabels", []string{"no such file"}},
		{"empty folder", sources.Config{Path: mkdir(t, at("emptydir")), Format: "folder"}, "emptydir", []string{"empty dataset"}},
		{"class without images", sources.Config{Path: filepath.Dir(filepath.Dir(write("noimg/cats/readme.txt", []byte("x"))))}, "noimg", []string{`class folder "cats" holds no images`}},
		{"images beside classes", sources.Config{Path: filepath.Dir(write("mixed/loose.png", testPNG(t, 0))) + mkdirSuffix(t, at("mixed/dogs"))}, "mixed", []string{"beside class folders", "loose.png"}},
		{"two folders", sources.Config{Paths: []string{"testdata/folder", "testdata/flat"}, Format: "folder"}, "", []string{"takes one folder"}},
		{"formats differ", sources.Config{Paths: []string{"testdata/hf.parquet", "testdata/hf.arrow"}}, "testdata/hf", []string{"format parquet differs from the arrow"}},
		{"listed twice", sources.Config{Paths: []string{"testdata/hf.parquet", "testdata/./hf.parquet"}}, "hf.parquet", []string{"listed twice"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := openAndStream(tt.cfg)
			if err == nil {
				t.Fatal("no error")
			}
			if pipeline.IsSkip(err) {
				t.Errorf("a structural error is a SkipError: %v", err)
			}
			msg := err.Error()
			t.Log(msg)
			if !strings.Contains(msg, tt.file) {
				t.Errorf("error does not name %s: %v", tt.file, msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q: %v", w, msg)
				}
			}
			if strings.Count(msg, "\n") > 0 {
				t.Errorf("error spans lines: %q", msg)
			}
		})
	}
}

func openAndStream(cfg sources.Config) error {
	ds, err := sources.Open(cfg)
	if err != nil {
		return err
	}
	defer ds.Close()
	return sources.Each(context.Background(), ds, sources.StreamConfig{}, func(pipeline.Sample) error { return nil })
}

func mkdir(t *testing.T, p string) string {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// mkdirSuffix makes p and returns "", for use inside an expression.
func mkdirSuffix(t *testing.T, p string) string {
	mkdir(t, p)
	return ""
}
