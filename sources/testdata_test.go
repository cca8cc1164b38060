package sources_test

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"flag"
	"image"
	"image/color"
	"image/jpeg"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/contrastream/contrastream/sinks"
)

var update = flag.Bool("update", false, "regenerate the files in testdata/")

// The test datasets: row i has label i%3 and an image whose top-left pixel
// is marker(i); row jpegRow is a JPEG (whose pixels are not exact).
const (
	testRows = 12
	jpegRow  = 7
)

var testClasses = []string{"circle", "square", "triangle"}

func marker(i int64) uint8 { return uint8(10*i + 5) }

// testImage is a small gray image: 8×6, marker(i) at (0, 0).
func testImage(i int64) *image.Gray {
	g := image.NewGray(image.Rect(0, 0, 8, 6))
	for k := range g.Pix {
		g.Pix[k] = uint8(k * 4)
	}
	g.Pix[0] = marker(i)
	return g
}

func testPNG(t testing.TB, i int64) []byte {
	b, err := sinks.EncodePNG(testImage(i))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testJPEG(t testing.TB, i int64) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 16, 16))
	for k := range img.Pix {
		img.Pix[k] = uint8(k)
	}
	img.Set(0, 0, color.Gray{marker(i)})
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// testEncoded is row i's image bytes.
func testEncoded(t testing.TB, i int64) []byte {
	if i == jpegRow {
		return testJPEG(t, i)
	}
	return testPNG(t, i)
}

// TestGenerateTestdata rewrites testdata/ with -update:
//
//	go test ./sources -run TestGenerateTestdata -update
func TestGenerateTestdata(t *testing.T) {
	if !*update {
		t.Skip("run with -update to regenerate testdata/")
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.RemoveAll("testdata"))
	for _, d := range []string{"folder/circle", "folder/square", "folder/triangle/more", "flat", "idx"} {
		must(os.MkdirAll(filepath.Join("testdata", d), 0o755))
	}

	// Hugging Face layout, 3 row groups (5, 5, 2), class names.
	w, err := sinks.CreateDataset("testdata/hf.parquet", sinks.DatasetWriterOptions{RowGroupSize: 5, ClassNames: testClasses})
	must(err)
	for i := range int64(testRows) {
		must(w.Write(testEncoded(t, i), "img/"+strconv.FormatInt(i, 10)+".png", i%3))
	}
	must(w.Close())

	// Unlabeled, 3 rows.
	w, err = sinks.CreateDataset("testdata/unlabeled.parquet", sinks.DatasetWriterOptions{Unlabeled: true})
	must(err)
	for i := range int64(3) {
		must(w.Write(testPNG(t, i), "", -1))
	}
	must(w.Close())

	// Plain binary column "img" and int32 column "y", 2 row groups of 4;
	// row 5's image and row 6's label are null.
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "y", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
		{Name: "img", Type: arrow.BinaryTypes.Binary, Nullable: true},
	}, nil)
	rb := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	for i := range int64(8) {
		if i == 6 {
			rb.Field(0).AppendNull()
		} else {
			rb.Field(0).(*array.Int32Builder).Append(int32(i % 3))
		}
		if i == 5 {
			rb.Field(1).AppendNull()
		} else {
			rb.Field(1).(*array.BinaryBuilder).Append(testPNG(t, i))
		}
	}
	rec := rb.NewRecordBatch()
	f, err := os.Create("testdata/binary.parquet")
	must(err)
	pw, err := pqarrow.NewFileWriter(sc, f, parquet.NewWriterProperties(parquet.WithMaxRowGroupLength(4)), pqarrow.DefaultWriterProps())
	must(err)
	must(pw.Write(rec))
	must(pw.Close())

	// Arrow IPC, file and stream format, batches of 5, 5, 2.
	hf := `{"info": {"features": {"image": {"_type": "Image"}, "label": {"names": ["circle", "square", "triangle"], "_type": "ClassLabel"}}}}`
	md := arrow.NewMetadata([]string{"huggingface"}, []string{hf})
	asc := arrow.NewSchema([]arrow.Field{
		{Name: "image", Nullable: true, Type: arrow.StructOf(
			arrow.Field{Name: "bytes", Type: arrow.BinaryTypes.Binary, Nullable: true},
			arrow.Field{Name: "path", Type: arrow.BinaryTypes.String, Nullable: true})},
		{Name: "label", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	}, &md)
	var batches []arrow.RecordBatch
	for _, r := range [][2]int64{{0, 5}, {5, 10}, {10, 12}} {
		b := array.NewRecordBuilder(memory.DefaultAllocator, asc)
		sb := b.Field(0).(*array.StructBuilder)
		for i := r[0]; i < r[1]; i++ {
			sb.Append(true)
			sb.FieldBuilder(0).(*array.BinaryBuilder).Append(testEncoded(t, i))
			sb.FieldBuilder(1).(*array.StringBuilder).Append("img/" + strconv.FormatInt(i, 10) + ".png")
			b.Field(1).(*array.Int64Builder).Append(i % 3)
		}
		batches = append(batches, b.NewRecordBatch())
	}
	f, err = os.Create("testdata/hf.arrow")
	must(err)
	fw, err := ipc.NewFileWriter(f, ipc.WithSchema(asc))
	must(err)
	for _, b := range batches {
		must(fw.Write(b))
	}
	must(fw.Close())
	must(f.Close())
	f, err = os.Create("testdata/hf.arrows")
	must(err)
	sw := ipc.NewWriter(f, ipc.WithSchema(asc))
	for _, b := range batches {
		must(sw.Write(b))
	}
	must(sw.Close())
	must(f.Close())

	// Image folder: 4 images per class, sorted by name: class c holds
	// rows 4c..4c+3; the last triangle is a JPEG in a nested folder.
	names := []string{"a.png", "b.png", "c.png", "d.png"}
	for i := range int64(testRows) {
		class, k := testClasses[i/4], i%4
		p := filepath.Join("testdata/folder", class, names[k])
		data := testPNG(t, i)
		if i == 11 {
			p, data = filepath.Join("testdata/folder/triangle/more/e.jpg"), testJPEG(t, i)
		}
		must(os.WriteFile(p, data, 0o644))
	}
	must(os.WriteFile("testdata/folder/README.txt", []byte("not an image: ignored\n"), 0o644))
	for i, n := range []string{"a.png", "b.png", "c.png"} {
		must(os.WriteFile(filepath.Join("testdata/flat", n), testPNG(t, int64(i)), 0o644))
	}

	// IDX: 12 images of 7 rows × 5 columns, labels i%3; plain and gzipped.
	imgs, labs := idxImages(testRows, 7, 5), idxLabels(testRows)
	must(os.WriteFile("testdata/idx/images-idx3-ubyte", imgs, 0o644))
	must(os.WriteFile("testdata/idx/labels-idx1-ubyte", labs, 0o644))
	must(os.WriteFile("testdata/idx/images-idx3-ubyte.gz", gz(imgs), 0o644))
	must(os.WriteFile("testdata/idx/labels-idx1-ubyte.gz", gz(labs), 0o644))
}

// idxImages makes an IDX images file: n images of rows × cols, image i
// with marker(i) at (0, 0).
func idxImages(n, rows, cols int) []byte {
	b := binary.BigEndian.AppendUint32(nil, 0x803)
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	b = binary.BigEndian.AppendUint32(b, uint32(rows))
	b = binary.BigEndian.AppendUint32(b, uint32(cols))
	for i := range n {
		px := make([]byte, rows*cols)
		for k := range px {
			px[k] = uint8(k)
		}
		if len(px) > 0 {
			px[0] = marker(int64(i))
		}
		b = append(b, px...)
	}
	return b
}

func idxLabels(n int) []byte {
	b := binary.BigEndian.AppendUint32(nil, 0x801)
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	for i := range n {
		b = append(b, byte(i%3))
	}
	return b
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}
