package sources_test

import (
	"context"
	"encoding/binary"
	"image"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/parquet/metadata"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sinks"
	"github.com/contrastream/contrastream/sources"
)

// writeRandomParquet writes groups row groups of rows rows, each row size
// random bytes (a source does not decode, so they need not be images).
func writeRandomParquet(t testing.TB, path string, groups, rows, size int) {
	t.Helper()
	w, err := sinks.CreateDataset(path, sinks.DatasetWriterOptions{RowGroupSize: rows})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.NewChaCha8([32]byte{1})
	b := make([]byte, size)
	for i := range groups * rows {
		rng.Read(b)
		if err := w.Write(b, "", int64(i%10)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// heapWhileStreaming streams path and samples HeapInuse at the end of each
// row group (while its samples are held). It returns the largest growth
// over the value before: with forceGC, of the live heap (a GC before each
// sample), else of the heap as the collector lets it grow.
func heapWhileStreaming(t *testing.T, path string, rows int64, forceGC bool) uint64 {
	t.Helper()
	ds, err := sources.Open(sources.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapInuse, ms.HeapInuse
	err = sources.Each(context.Background(), ds, sources.StreamConfig{}, func(s pipeline.Sample) error {
		if s.Index%rows == rows-1 {
			if forceGC {
				runtime.GC()
			}
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return peak - base
}

// TestParquetMemoryBounded shows that streaming a Parquet file holds a row
// group, not the file: a file of 100 row groups (40 MB) needs no more heap
// than one of 10 row groups of the same size (400 KB each).
func TestParquetMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 44 MB")
	}
	const rows, size = 100, 4096
	dir := t.TempDir()
	small, large := filepath.Join(dir, "10.parquet"), filepath.Join(dir, "100.parquet")
	writeRandomParquet(t, small, 10, rows, size)
	writeRandomParquet(t, large, 100, rows, size)
	live10, live100 := heapWhileStreaming(t, small, rows, true), heapWhileStreaming(t, large, rows, true)
	peak10, peak100 := heapWhileStreaming(t, small, rows, false), heapWhileStreaming(t, large, rows, false)
	mb := func(b uint64) float64 { return float64(b) / 1e6 }
	t.Logf("heap growth while streaming, 10 row groups (4 MB file) / 100 row groups (40 MB file): live %.1f / %.1f MB, peak %.1f / %.1f MB",
		mb(live10), mb(live100), mb(peak10), mb(peak100))
	if live100 > live10+1<<20 || live100 > 4<<20 {
		t.Errorf("live heap grows with the file: %d bytes for 10 row groups, %d for 100", live10, live100)
	}
	if peak100 > 16<<20 {
		t.Errorf("peak heap %d bytes for a 40 MB file", peak100)
	}
}

var benchFile struct {
	once sync.Once
	path string
	err  error
}

// benchParquet writes (once) 10,000 28×28 gray PNGs in 10 row groups.
func benchParquet(b *testing.B) string {
	benchFile.once.Do(func() {
		dir, err := makeTempDir()
		if err != nil {
			benchFile.err = err
			return
		}
		benchFile.path = filepath.Join(dir, "bench.parquet")
		w, err := sinks.CreateDataset(benchFile.path, sinks.DatasetWriterOptions{RowGroupSize: 1000})
		if err != nil {
			benchFile.err = err
			return
		}
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range 10000 {
			img := benchImage(rng)
			png, err := sinks.EncodePNG(img)
			if err == nil {
				err = w.Write(png, "", int64(i%10))
			}
			if err != nil {
				benchFile.err = err
				return
			}
		}
		benchFile.err = w.Close()
	})
	if benchFile.err != nil {
		b.Fatal(benchFile.err)
	}
	return benchFile.path
}

// benchImage is a 28×28 gray image with a noisy blob, about the size of a
// Fashion-MNIST PNG.
func benchImage(rng *rand.Rand) *image.Gray {
	g := image.NewGray(image.Rect(0, 0, 28, 28))
	cx, cy, r := 6+rng.IntN(16), 6+rng.IntN(16), 4+rng.IntN(8)
	for y := range 28 {
		for x := range 28 {
			if (x-cx)*(x-cx)+(y-cy)*(y-cy) < r*r {
				g.Pix[y*28+x] = uint8(128 + rng.IntN(128))
			}
		}
	}
	return g
}

func BenchmarkParquetRead(b *testing.B) {
	path := benchParquet(b)
	ds, err := sources.Open(sources.Config{Path: path})
	if err != nil {
		b.Fatal(err)
	}
	defer ds.Close()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	n, bytes := 0, 0
	start := time.Now()
	for b.Loop() {
		err := sources.Each(context.Background(), ds, sources.StreamConfig{Shuffle: true}, func(s pipeline.Sample) error {
			n++
			bytes += len(s.Encoded)
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	el := time.Since(start)
	runtime.ReadMemStats(&ms1)
	b.ReportMetric(float64(n)/el.Seconds(), "images/s")
	b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(n), "alloc-B/image")
	b.ReportMetric(float64(bytes)/float64(n), "png-B/image")
}

func BenchmarkDecode(b *testing.B) {
	png, err := sinks.EncodePNG(benchImage(rand.New(rand.NewPCG(1, 2))))
	if err != nil {
		b.Fatal(err)
	}
	s := pipeline.Sample{Encoded: png, Origin: "bench"}
	for b.Loop() {
		if _, err := sources.Decode(s, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// makeTempDir makes a folder for benchmark files that outlives one
// benchmark run (b.TempDir would be removed between b.N rounds).
func makeTempDir() (string, error) { return os.MkdirTemp("", "contrastream-bench-*") }

func TestMain(m *testing.M) {
	code := m.Run()
	if benchFile.path != "" {
		os.RemoveAll(filepath.Dir(benchFile.path))
	}
	os.Exit(code)
}

// lyingFooter rewrites the footer of the Parquet file b: row group rg
// claims rows rows and, when values >= 0, each of its column chunks claims
// values values.
func lyingFooter(t *testing.T, b []byte, rg int, rows, values int64) []byte {
	t.Helper()
	n := int(binary.LittleEndian.Uint32(b[len(b)-8:]))
	body := b[:len(b)-8-n]
	md, err := metadata.NewFileMetaData(b[len(body):len(b)-8], nil)
	if err != nil {
		t.Fatal(err)
	}
	md.NumRows += rows - md.RowGroups[rg].NumRows
	md.RowGroups[rg].NumRows = rows
	if values >= 0 {
		for _, c := range md.RowGroups[rg].Columns {
			c.MetaData.NumValues = values
		}
	}
	footer, err := md.Serialize(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := append(append([]byte(nil), body...), footer...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(footer)))
	return append(out, "PAR1"...)
}

// TestParquetLyingFooter opens and streams files whose footer states row
// counts their data do not hold: each must fail with an error naming the
// row group, without allocating for the count (before the fix, a footer
// claiming 2^40 rows crashed the process: out of memory).
func TestParquetLyingFooter(t *testing.T) {
	hf, err := os.ReadFile("testdata/hf.parquet") // row groups of 5, 5, 2 rows
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name         string
		rg           int
		rows, values int64 // values -1: as written
		want         string
	}{
		{"rows unlike values", 0, 1 << 40, -1, "row group 0: the footer says 1099511627776 rows but column \"image.bytes\" holds 5 values"},
		{"fewer rows than values", 1, 2, -1, "row group 1: the footer says 2 rows but column \"image.bytes\" holds 5 values"},
		{"negative rows", 2, -1, -1, "row group 2: negative row count -1"},
		{"consistent lie, 2^40 rows", 0, 1 << 40, 1 << 40, "row group 0: read 5 rows, the footer says 1099511627776"},
		{"consistent lie, 1000 rows", 2, 1000, 1000, "row group 2: read 2 rows, the footer says 1000"},
		{"consistent lie, fewer rows", 0, 3, 3, "row group 0: the data holds more rows than the 3 the footer says"},
		{"total over 2^63", 1, 1 << 62, 1 << 62, "lie2.parquet row group 1: row count 4611686018427387904 makes more than 2^63 rows in all"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			lie := lyingFooter(t, hf, tt.rg, tt.rows, tt.values)
			cfg := sources.Config{Path: filepath.Join(dir, "lie.parquet")}
			if strings.Contains(tt.want, "lie2") {
				cfg.Paths = []string{filepath.Join(dir, "lie2.parquet")} // 2 × (2^62 + 7) rows
			}
			for _, p := range append([]string{cfg.Path}, cfg.Paths...) {
				if err := os.WriteFile(p, lie, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			err := openAndStream(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
}
