package sinks_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sinks"
)

// TestEmbeddingsRoundTrip writes 10 rows in row groups of 4 and reads them
// back twice: with plain pqarrow, as any Parquet reader would, and with
// ReadEmbeddings.
func TestEmbeddingsRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "emb.parquet")
	info := sinks.EmbeddingInfo{Dim: 3, Checkpoint: "run/checkpoint", Step: 7, Flow: "moco", Data: "builtin:test", ClassNames: []string{"a", "b"}}
	w, err := sinks.CreateEmbeddings(path, sinks.EmbeddingWriterOptions{Info: info, RowGroupSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	vec := func(i int) []float32 { return []float32{float32(i), -float32(i) / 2, 1} }
	label := func(i int) int64 {
		if i%3 == 2 {
			return pipeline.NoLabel
		}
		return int64(i % 2)
	}
	pathOf := func(i int) string {
		if i%2 == 1 {
			return ""
		}
		return "img/" + string(rune('a'+i)) + ".png"
	}
	for i := range 10 {
		if err := w.Write(int64(100+i), label(i), pathOf(i), vec(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the file is there before Close: %v", err)
	}
	if err := w.Write(1, 0, "", []float32{1, 2}); err == nil || !strings.Contains(err.Error(), "2 values; want 3") {
		t.Errorf("short vector: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	// Plain pqarrow: the schema and the values.
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	if pf.NumRowGroups() != 3 {
		t.Errorf("%d row groups; want 3", pf.NumRowGroups())
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	sc := tbl.Schema()
	if got := sc.Field(3).Type; !arrow.TypeEqual(got, arrow.FixedSizeListOf(3, arrow.PrimitiveTypes.Float32)) {
		t.Errorf("embedding column is %s; want fixed_size_list<float32>[3]", got)
	}
	for i, want := range []string{"index", "label", "path", "embedding"} {
		if sc.Field(i).Name != want {
			t.Errorf("column %d is %q; want %q", i, sc.Field(i).Name, want)
		}
	}
	fsc, err := fr.Schema() // ReadTable's schema drops the metadata
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := fsc.Metadata().GetValue(sinks.EmbeddingInfoKey); !ok || !strings.Contains(v, `"normalized":false`) || !strings.Contains(v, `"kind":"features"`) {
		t.Errorf("metadata %s: %q", sinks.EmbeddingInfoKey, v)
	}
	rr := array.NewTableReader(tbl, 10)
	defer rr.Release()
	rr.Next()
	rec := rr.RecordBatch()
	emb := rec.Column(3).(*array.FixedSizeList)
	vals := emb.ListValues().(*array.Float32)
	if got := vals.Float32Values()[3*7 : 3*8]; !slices.Equal(got, vec(7)) {
		t.Errorf("row 7 through pqarrow: %v; want %v", got, vec(7))
	}
	if !rec.Column(1).IsNull(2) || !rec.Column(2).IsNull(1) {
		t.Errorf("NoLabel and an empty path should be null")
	}

	// ReadEmbeddings.
	e, err := sinks.ReadEmbeddings(path)
	if err != nil {
		t.Fatal(err)
	}
	if e.N != 10 || e.D != 3 || !slices.Equal(e.Info.ClassNames, info.ClassNames) || e.Info.Step != 7 || e.Info.Kind != sinks.KindFeatures {
		t.Fatalf("read %d×%d, info %+v", e.N, e.D, e.Info)
	}
	for i := range 10 {
		if e.Index[i] != int64(100+i) || e.Label[i] != label(i) || e.Path[i] != pathOf(i) || !slices.Equal(e.Vector(i), vec(i)) {
			t.Errorf("row %d: %d %d %q %v", i, e.Index[i], e.Label[i], e.Path[i], e.Vector(i))
		}
	}
}

func TestEmbeddingWriterAbortKeepsTheOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "emb.parquet")
	os.WriteFile(path, []byte("old"), 0o600)
	w, err := sinks.CreateEmbeddings(path, sinks.EmbeddingWriterOptions{Info: sinks.EmbeddingInfo{Dim: 2}})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(0, 0, "", []float32{1, 2})
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Errorf("after Abort the file holds %q", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("a temporary file is left: %v", ents)
	}
	if _, err := sinks.NewEmbeddingWriter(nil, sinks.EmbeddingWriterOptions{}); err == nil {
		t.Error("a writer of dimension 0")
	}
}

// writeTable writes one record batch of the given columns as Parquet.
func writeTable(t *testing.T, path string, fields []arrow.Field, cols []arrow.Array) {
	t.Helper()
	sc := arrow.NewSchema(fields, nil)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pqarrow.NewFileWriter(sc, f, nil, pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	rec := array.NewRecordBatch(sc, cols, int64(cols[0].Len()))
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestReadEmbeddingsBadFiles(t *testing.T) {
	mem := memory.DefaultAllocator
	ints := func(v ...int64) arrow.Array {
		b := array.NewInt64Builder(mem)
		b.AppendValues(v, nil)
		return b.NewArray()
	}
	strs := func(v ...string) arrow.Array {
		b := array.NewStringBuilder(mem)
		b.AppendValues(v, nil)
		return b.NewArray()
	}
	// list builds a list<elem> column of rows (nil: a null row).
	list := func(fixed int, rows ...[]float64) (arrow.Array, arrow.DataType) { // the column and its type
		var b interface {
			array.Builder
			ValueBuilder() array.Builder
		}
		var lb *array.ListBuilder
		var fb *array.FixedSizeListBuilder
		if fixed > 0 {
			fb = array.NewFixedSizeListBuilder(mem, int32(fixed), arrow.PrimitiveTypes.Float32)
			b = fb
		} else {
			lb = array.NewListBuilder(mem, arrow.PrimitiveTypes.Float32)
			b = lb
		}
		vb := b.ValueBuilder().(*array.Float32Builder)
		for _, r := range rows {
			if r == nil {
				if fb != nil {
					fb.AppendNull()
				} else {
					lb.AppendNull()
				}
				continue
			}
			if fb != nil {
				fb.Append(true)
			} else {
				lb.Append(true)
			}
			for _, v := range r {
				vb.Append(float32(v))
			}
		}
		a := b.NewArray()
		return a, a.DataType()
	}
	i32 := array.NewInt32Builder(mem)
	i32.AppendValues([]int32{1, 2}, nil)
	intList := i32.NewArray()
	type col struct {
		name string
		a    arrow.Array
	}
	fixed, _ := list(2, []float64{1, 2}, []float64{3, 4})
	ragged, _ := list(0, []float64{1, 2}, []float64{3})
	nullRow, _ := list(2, []float64{1, 2}, nil)
	nan, _ := list(2, []float64{1, 2}, []float64{math.NaN(), 4})
	varOK, _ := list(0, []float64{1, 2}, []float64{3, 4})
	for _, tc := range []struct {
		name string
		cols []col
		want string // in the error; "" for a good file
	}{
		{"list of float32 is fine", []col{{"index", ints(0, 1)}, {"embedding", varOK}}, ""},
		{"no embedding", []col{{"index", ints(0, 1)}, {"label", ints(0, 1)}}, `no column "embedding"`},
		{"no index", []col{{"embedding", fixed}}, `no column "index"`},
		{"index of strings", []col{{"index", strs("a", "b")}, {"embedding", fixed}}, `column "index": is utf8; want int64`},
		{"label of strings", []col{{"index", ints(0, 1)}, {"label", strs("a", "b")}, {"embedding", fixed}}, `column "label": is utf8`},
		{"path of ints", []col{{"index", ints(0, 1)}, {"path", ints(0, 1)}, {"embedding", fixed}}, `column "path": is int64; want string`},
		{"embedding of ints", []col{{"index", ints(0, 1)}, {"embedding", intList}}, `column "embedding": is int32; want fixed_size_list<float32>[D]`},
		{"ragged lists", []col{{"index", ints(0, 1)}, {"embedding", ragged}}, `column "embedding": row 1 has 1 values; earlier rows have 2`},
		{"null vector", []col{{"index", ints(0, 1)}, {"embedding", nullRow}}, `column "embedding": row 1 is null`},
		{"NaN", []col{{"index", ints(0, 1)}, {"embedding", nan}}, `column "embedding": row 1: value 0 is NaN`},
		{"negative label", []col{{"index", ints(0, 1)}, {"label", ints(0, -3)}, {"embedding", fixed}}, `column "label": row 1 is -3`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.parquet")
			var fields []arrow.Field
			var arrs []arrow.Array
			for _, c := range tc.cols {
				fields = append(fields, arrow.Field{Name: c.name, Type: c.a.DataType(), Nullable: true})
				arrs = append(arrs, c.a)
			}
			writeTable(t, path, fields, arrs)
			_, err := sinks.ReadEmbeddings(path)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %v; want one naming %s and saying %q", err, path, tc.want)
			}
		})
	}
	t.Run("not parquet", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "x.parquet")
		os.WriteFile(path, []byte("PAR1 not really"), 0o644)
		if _, err := sinks.ReadEmbeddings(path); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("error %v", err)
		}
	})
}

func TestNearest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "e.parquet")
	w, err := sinks.CreateEmbeddings(path, sinks.EmbeddingWriterOptions{Info: sinks.EmbeddingInfo{Dim: 2}})
	if err != nil {
		t.Fatal(err)
	}
	// Angles 0°, 10°, 90°, 180°, and a zero vector; lengths differ.
	for i, v := range [][]float32{{1, 0}, {5 * float32(math.Cos(0.1745)), 5 * float32(math.Sin(0.1745))}, {0, 2}, {-3, 0}, {0, 0}} {
		w.Write(int64(i), pipeline.NoLabel, "", v)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	e, err := sinks.ReadEmbeddings(path)
	if err != nil {
		t.Fatal(err)
	}
	nb, err := e.Nearest([]float32{2, 0}, 3, -1)
	if err != nil {
		t.Fatal(err)
	}
	rows := []int{nb[0].Row, nb[1].Row, nb[2].Row}
	if !slices.Equal(rows, []int{0, 1, 2}) || math.Abs(float64(nb[0].Similarity)-1) > 1e-6 || math.Abs(float64(nb[1].Similarity)-math.Cos(0.1745)) > 1e-5 {
		t.Errorf("nearest to (2,0): %+v", nb)
	}
	if nb, _ := e.Nearest(e.Vector(0), 2, 0); nb[0].Row != 1 || nb[1].Row != 2 {
		t.Errorf("nearest to row 0 but itself: %+v", nb)
	}
	if nb, _ := e.Nearest([]float32{-1, 0}, 10, -1); len(nb) != 5 || nb[0].Row != 3 || nb[4].Row != 0 {
		t.Errorf("all rows: %+v", nb)
	}
	if _, err := e.Nearest([]float32{1}, 1, -1); err == nil {
		t.Error("a query of the wrong length")
	}
}
