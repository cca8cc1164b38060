package sources

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"reflect"
	"runtime"
	"testing"

	"github.com/contrastream/contrastream/pipeline"
)

// samePNGImage reports how fast, from decodePNG, differs from ref, from
// image/png: in concrete type, bounds, stride or pixels.
func samePNGImage(fast, ref image.Image) error {
	if reflect.TypeOf(fast) != reflect.TypeOf(ref) {
		return fmt.Errorf("type %T, image/png gives %T", fast, ref)
	}
	var fr, rr image.Rectangle
	var fs, rs int
	var fp, rp []byte
	switch f := fast.(type) {
	case *image.Gray:
		r := ref.(*image.Gray)
		fr, rr, fs, rs, fp, rp = f.Rect, r.Rect, f.Stride, r.Stride, f.Pix, r.Pix
	case *image.RGBA:
		r := ref.(*image.RGBA)
		fr, rr, fs, rs, fp, rp = f.Rect, r.Rect, f.Stride, r.Stride, f.Pix, r.Pix
	case *image.NRGBA:
		r := ref.(*image.NRGBA)
		fr, rr, fs, rs, fp, rp = f.Rect, r.Rect, f.Stride, r.Stride, f.Pix, r.Pix
	default:
		return fmt.Errorf("unexpected type %T", fast)
	}
	if fr != rr || fs != rs {
		return fmt.Errorf("bounds %v stride %d, image/png gives %v stride %d", fr, fs, rr, rs)
	}
	if !bytes.Equal(fp, rp) {
		for i := range fp {
			if fp[i] != rp[i] {
				return fmt.Errorf("pixel byte %d is %d, image/png gives %d", i, fp[i], rp[i])
			}
		}
	}
	return nil
}

// checkFast decodes b with the fast path and with image/png. The fast path
// must take it when wantFast, and when it does image/png must give the same
// image. decode must give image/png's image or fail where image/png does.
func checkFast(t *testing.T, b []byte, wantFast bool) {
	t.Helper()
	const limit = 1 << 20 // so that a corrupt header does not cost much
	fast, ok := decodePNG(b, limit)
	if cfg, err := png.DecodeConfig(bytes.NewReader(b)); err == nil && cfg.Width*cfg.Height > limit {
		if ok {
			t.Fatalf("fast path took %d×%d pixels, over the limit", cfg.Width, cfg.Height)
		}
		if _, err := Decode(pipeline.Sample{Encoded: b, Origin: "test"}, limit); err == nil || !pipeline.IsSkip(err) {
			t.Fatalf("decode: %v", err)
		}
		return
	}
	ref, refErr := png.Decode(bytes.NewReader(b))
	if wantFast && !ok {
		t.Fatalf("fast path not taken (image/png: %v)", refErr)
	}
	if ok {
		if refErr != nil {
			t.Fatalf("fast path decoded what image/png rejects: %v", refErr)
		}
		if err := samePNGImage(fast, ref); err != nil {
			t.Fatal(err)
		}
	}
	img, _, err := decode(pipeline.Sample{Encoded: b, Origin: "test"}, limit)
	switch {
	case refErr != nil && err == nil:
		t.Fatalf("decode accepted what image/png rejects: %v", refErr)
	case refErr == nil && err != nil:
		t.Fatalf("decode: %v; image/png decodes it", err)
	case err != nil && !pipeline.IsSkip(err):
		t.Fatalf("decode: %v is not a skip", err)
	case err == nil:
		if ok {
			if err := samePNGImage(img, ref); err != nil {
				t.Fatal(err)
			}
		} else if !reflect.DeepEqual(img, ref) {
			t.Fatal("decode's image differs from image/png's")
		}
	}
}

// TestDecodePNGBuiltin decodes every image of the built-in dataset (Fashion-
// MNIST, 28×28 gray PNGs) with the fast path and with image/png. It reads
// the Parquet files package builtin embeds: builtin imports this package,
// so this test cannot import it.
func TestDecodePNGBuiltin(t *testing.T) {
	for _, split := range []string{"train", "test"} {
		t.Run(split, func(t *testing.T) {
			name := "builtin/data/" + split + ".parquet"
			data, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			ds, err := OpenParquetBytes(name, data, "", "")
			if err != nil {
				t.Fatal(err)
			}
			defer ds.Close()
			n := 0
			err = Each(context.Background(), ds, StreamConfig{}, func(s pipeline.Sample) error {
				n++
				fast, ok := decodePNG(s.Encoded, DefaultMaxPixels)
				if !ok {
					return fmt.Errorf("%s: fast path not taken", s.Origin)
				}
				ref, err := png.Decode(bytes.NewReader(s.Encoded))
				if err != nil {
					return fmt.Errorf("%s: image/png: %v", s.Origin, err)
				}
				if err := samePNGImage(fast, ref); err != nil {
					return fmt.Errorf("%s: %v", s.Origin, err)
				}
				if _, ok := fast.(*image.Gray); !ok {
					return fmt.Errorf("%s: %T", s.Origin, fast)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if int64(n) != ds.Len() || n == 0 {
				t.Fatalf("decoded %d of %d images", n, ds.Len())
			}
		})
	}
}

// randomImage returns a w×h image that image/png encodes with colour type
// ct (0, 2 or 6; it never writes 4), of random pixels.
func randomImage(rng *rand.Rand, ct, w, h int) image.Image {
	r := image.Rect(0, 0, w, h)
	switch ct {
	case pngGray:
		m := image.NewGray(r)
		fillRandom(rng, m.Pix)
		return m
	case pngRGB:
		m := image.NewRGBA(r)
		fillRandom(rng, m.Pix)
		for i := 3; i < len(m.Pix); i += 4 {
			m.Pix[i] = 0xff
		}
		return m
	default:
		m := image.NewNRGBA(r)
		fillRandom(rng, m.Pix)
		m.Pix[3] = 0x80 // not opaque
		return m
	}
}

// fillRandom fills p with smooth random bytes (so that all the filters
// have something to predict) and some noise.
func fillRandom(rng *rand.Rand, p []byte) {
	v := byte(rng.IntN(256))
	for i := range p {
		if rng.IntN(4) == 0 {
			v = byte(rng.IntN(256))
		} else {
			v += byte(rng.IntN(5))
		}
		p[i] = v
	}
}

var testSizes = [][2]int{{1, 1}, {3, 5}, {28, 28}, {64, 47}, {5, 1}, {1, 7}}

// TestDecodePNGEncoder decodes random images that image/png's encoder wrote,
// at each compression level, which picks filters row by row.
func TestDecodePNGEncoder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	levels := []png.CompressionLevel{png.DefaultCompression, png.NoCompression, png.BestSpeed, png.BestCompression}
	for _, ct := range []int{pngGray, pngRGB, pngRGBA} {
		for _, sz := range testSizes {
			for _, level := range levels {
				t.Run(fmt.Sprintf("ct%d/%dx%d/level%d", ct, sz[0], sz[1], level), func(t *testing.T) {
					var buf bytes.Buffer
					enc := png.Encoder{CompressionLevel: level}
					if err := enc.Encode(&buf, randomImage(rng, ct, sz[0], sz[1])); err != nil {
						t.Fatal(err)
					}
					if got := int(buf.Bytes()[25]); got != ct {
						t.Fatalf("encoder wrote colour type %d", got)
					}
					checkFast(t, buf.Bytes(), true)
				})
			}
		}
	}
}

// pngFile is a PNG for testPNGFile to write: raw, unfiltered rows of
// w*bpp bytes, filtered as filter says.
type pngFile struct {
	w, h, ct, depth int
	raw             []byte
	filter          func(y int) byte // the filter of row y
	level           int              // zlib's compression level
	idatSize        int              // split the zlib stream into IDATs of this size (0: one IDAT)
	emptyIDATs      bool             // put a zero-length IDAT before and after each
	ancillary       bool             // add tEXt chunks before and after the IDATs
	interlace       byte
	editStream      func([]byte) []byte // changes the zlib stream
	editRows        func([]byte) []byte // changes the filtered rows before compression
}

func pngChunk(out []byte, typ string, data []byte) []byte {
	out = binary.BigEndian.AppendUint32(out, uint32(len(data)))
	start := len(out)
	out = append(out, typ...)
	out = append(out, data...)
	return binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(out[start:]))
}

func filterRow(ft byte, cur, prev []byte, bpp int) []byte {
	out := make([]byte, len(cur))
	for i := range cur {
		var a, b, c byte
		if i >= bpp {
			a, c = cur[i-bpp], prev[i-bpp]
		}
		b = prev[i]
		var p byte
		switch ft {
		case 1:
			p = a
		case 2:
			p = b
		case 3:
			p = byte((int(a) + int(b)) / 2)
		case 4:
			p = paethSpec(a, b, c)
		}
		out[i] = cur[i] - p
	}
	return out
}

// paethSpec is the Paeth predictor as the PNG spec writes it.
func paethSpec(a, b, c byte) byte {
	p := int(a) + int(b) - int(c)
	pa, pb, pc := absInt(p-int(a)), absInt(p-int(b)), absInt(p-int(c))
	if pa <= pb && pa <= pc {
		return a
	} else if pb <= pc {
		return b
	}
	return c
}

func (f pngFile) bpp() int {
	return map[int]int{pngGray: 1, pngGrayAlpha: 2, pngRGB: 3, pngRGBA: 4}[f.ct]
}

func (f pngFile) encode(t testing.TB) []byte {
	bpp, depth := f.bpp(), f.depth
	if depth == 0 {
		depth = 8
	}
	rowLen := f.w * bpp
	var rows []byte
	prev := make([]byte, rowLen)
	for y := range f.h {
		cur := f.raw[y*rowLen : (y+1)*rowLen]
		ft := byte(0)
		if f.filter != nil {
			ft = f.filter(y)
		}
		rows = append(rows, ft)
		rows = append(rows, filterRow(ft, cur, prev, bpp)...)
		prev = cur
	}
	if f.editRows != nil {
		rows = f.editRows(rows)
	}
	var z bytes.Buffer
	zw, err := zlib.NewWriterLevel(&z, f.level)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(rows)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	stream := z.Bytes()
	if f.editStream != nil {
		stream = f.editStream(stream)
	}

	out := []byte(pngSignature)
	ihdr := binary.BigEndian.AppendUint32(nil, uint32(f.w))
	ihdr = binary.BigEndian.AppendUint32(ihdr, uint32(f.h))
	ihdr = append(ihdr, byte(depth), byte(f.ct), 0, 0, f.interlace)
	out = pngChunk(out, "IHDR", ihdr)
	if f.ancillary {
		out = pngChunk(out, "tEXt", []byte("Comment\x00before"))
	}
	size := f.idatSize
	if size <= 0 {
		size = len(stream)
	}
	for len(stream) > 0 {
		n := min(size, len(stream))
		if f.emptyIDATs {
			out = pngChunk(out, "IDAT", nil)
		}
		out = pngChunk(out, "IDAT", stream[:n])
		stream = stream[n:]
	}
	if f.emptyIDATs {
		out = pngChunk(out, "IDAT", nil)
	}
	if f.ancillary {
		out = pngChunk(out, "tEXt", []byte("Comment\x00after"))
	}
	return pngChunk(out, "IEND", nil)
}

func randomRaw(rng *rand.Rand, f pngFile) pngFile {
	f.raw = make([]byte, f.w*f.h*f.bpp())
	fillRandom(rng, f.raw)
	return f
}

// TestDecodePNGFilters decodes hand-built PNGs of every supported colour
// type, gray+alpha included, with every filter on every row, then filters
// varying by row, in one IDAT or many, with ancillary chunks.
func TestDecodePNGFilters(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, ct := range []int{pngGray, pngGrayAlpha, pngRGB, pngRGBA} {
		for _, sz := range testSizes {
			for ft := range 6 { // 5: the filter varies by row
				t.Run(fmt.Sprintf("ct%d/%dx%d/filter%d", ct, sz[0], sz[1], ft), func(t *testing.T) {
					f := randomRaw(rng, pngFile{w: sz[0], h: sz[1], ct: ct, level: zlib.DefaultCompression})
					f.filter = func(int) byte { return byte(ft) }
					if ft == 5 {
						f.filter = func(y int) byte { return byte((y + sz[0]) % 5) }
					}
					checkFast(t, f.encode(t), true)
					f.idatSize, f.emptyIDATs, f.ancillary, f.level = 7, true, true, zlib.NoCompression
					checkFast(t, f.encode(t), true)
					f.idatSize, f.emptyIDATs, f.level = 1, false, zlib.BestCompression
					checkFast(t, f.encode(t), true)
				})
			}
		}
	}
}

// TestDecodePNGFallback checks that PNGs the fast path does not take decode
// as image/png decodes them.
func TestDecodePNGFallback(t *testing.T) {
	pal := image.NewPaletted(image.Rect(0, 0, 5, 3), color.Palette{color.Black, color.White})
	pal.Pix[4] = 1
	g16 := image.NewGray16(image.Rect(0, 0, 4, 4))
	g16.Pix[3] = 7
	var encoded [][]byte
	for _, m := range []image.Image{pal, g16} {
		var buf bytes.Buffer
		if err := png.Encode(&buf, m); err != nil {
			t.Fatal(err)
		}
		encoded = append(encoded, buf.Bytes())
	}
	rng := rand.New(rand.NewPCG(5, 6))
	gray := randomRaw(rng, pngFile{w: 4, h: 3, ct: pngGray, level: 6}).encode(t)
	rgb := randomRaw(rng, pngFile{w: 4, h: 3, ct: pngRGB, level: 6}).encode(t)
	withChunk := func(b []byte, typ string, data []byte) []byte { // inserted after IHDR
		out := append([]byte(nil), b[:33]...)
		out = pngChunk(out, typ, data)
		return append(out, b[33:]...)
	}
	// 2×2 gray rows of 2 bytes are also those of 16×2 at 1 bit.
	lowDepth := randomRaw(rng, pngFile{w: 2, h: 2, ct: pngGray, level: 6}).encode(t)
	binary.BigEndian.PutUint32(lowDepth[16:], 16)
	lowDepth[24] = 1
	fixCRCs(lowDepth)
	tests := []struct {
		name string
		b    []byte
	}{
		{"palette", encoded[0]},
		{"16-bit", encoded[1]},
		{"1-bit gray", lowDepth},
		{"gray with tRNS", withChunk(gray, "tRNS", []byte{0, 7})},
		{"RGB with tRNS", withChunk(rgb, "tRNS", []byte{0, 1, 0, 2, 0, 3})},
		{"RGB with a suggested PLTE", withChunk(rgb, "PLTE", []byte{1, 2, 3})},
		{"unknown critical chunk", withChunk(gray, "ABCD", []byte{1})},
		{"interlaced", randomRaw(rng, pngFile{w: 1, h: 1, ct: pngGray, interlace: 1}).encode(t)},
		{"trailing bytes after IEND", append(append([]byte(nil), gray...), "garbage"...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "trailing bytes after IEND" {
				checkFast(t, tt.b, true) // image/png ignores them too
				return
			}
			if _, ok := decodePNG(tt.b, DefaultMaxPixels); ok {
				t.Fatal("fast path taken")
			}
			checkFast(t, tt.b, false)
		})
	}
}

// TestDecodePNGCorrupt checks that corrupt PNGs of the fast path's kinds
// fail, as they do in image/png, and never panic.
func TestDecodePNGCorrupt(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	base := randomRaw(rng, pngFile{w: 3, h: 5, ct: pngRGB, level: 6, filter: func(y int) byte { return byte(y % 5) }})
	good := base.encode(t)
	checkFast(t, good, true)

	t.Run("truncated", func(t *testing.T) {
		for n := range len(good) {
			if _, ok := decodePNG(good[:n], DefaultMaxPixels); ok {
				t.Fatalf("fast path took the file truncated to %d bytes", n)
			}
			if _, err := Decode(pipeline.Sample{Encoded: good[:n]}, 0); err == nil || !pipeline.IsSkip(err) {
				t.Fatalf("truncated to %d bytes: %v", n, err)
			}
		}
	})
	t.Run("bad CRC", func(t *testing.T) {
		for pos := 8; pos < len(good); { // flip a bit of each chunk's CRC
			end := pos + 8 + int(binary.BigEndian.Uint32(good[pos:]))
			b := append([]byte(nil), good...)
			b[end] ^= 1
			mustFail(t, b)
			pos = end + 4
		}
	})
	t.Run("every byte changed", func(t *testing.T) {
		// A bit flip anywhere, with the chunks' CRCs fixed after it, must
		// fail or decode as in image/png.
		for i := 8; i < len(good); i++ {
			for _, bit := range []byte{1, 0x80} {
				b := append([]byte(nil), good...)
				b[i] ^= bit
				fixCRCs(b)
				checkFast(t, b, false)
			}
		}
	})

	cases := []struct {
		name string
		edit func(f *pngFile)
	}{
		{"bad zlib header", func(f *pngFile) { f.editStream = func(s []byte) []byte { s[0] = 0x79; return s } }},
		{"bad Adler-32", func(f *pngFile) { f.editStream = func(s []byte) []byte { s[len(s)-1] ^= 1; return s } }},
		{"zlib stream cut short", func(f *pngFile) { f.editStream = func(s []byte) []byte { return s[:len(s)-5] } }},
		{"an extra row", func(f *pngFile) { f.editRows = func(r []byte) []byte { return append(r, make([]byte, 10)...) } }},
		{"an extra byte", func(f *pngFile) { f.editRows = func(r []byte) []byte { return append(r, 0) } }},
		{"a row short", func(f *pngFile) { f.editRows = func(r []byte) []byte { return r[:len(r)-10] } }},
		{"bad filter type", func(f *pngFile) { f.editRows = func(r []byte) []byte { r[10] = 5; return r } }},
		{"stored block, cut short", func(f *pngFile) {
			f.level = zlib.NoCompression
			f.editRows = func(r []byte) []byte { return r[:len(r)-1] }
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := base
			c.edit(&f)
			mustFail(t, f.encode(t))
			// Split, the stream may end at the end of an IDAT, and image/png
			// ignores the IDATs after it: compare.
			f.idatSize, f.emptyIDATs = 3, true
			checkFast(t, f.encode(t), false)
		})
	}
	t.Run("wrong IDAT length", func(t *testing.T) {
		idat := 33 // the IDAT follows IHDR
		for _, d := range []int{-1, 1, 1 << 20, -1 << 31} {
			b := append([]byte(nil), good...)
			n := int32(binary.BigEndian.Uint32(b[idat:]))
			binary.BigEndian.PutUint32(b[idat:], uint32(n+int32(d)))
			mustFail(t, b)
			fixCRCs(b) // where the chunks still parse
			checkFast(t, b, false)
		}
	})
	t.Run("data after the zlib stream", func(t *testing.T) {
		// image/png accepts bytes after the stream's checksum in the last
		// IDAT when its read-ahead buffer took them; the fast path leaves
		// such a file to it.
		f := base
		f.editStream = func(s []byte) []byte { return append(s, 0) }
		b := f.encode(t)
		if _, ok := decodePNG(b, DefaultMaxPixels); ok {
			t.Fatal("fast path took it")
		}
		checkFast(t, b, false)
	})
	t.Run("missing IEND", func(t *testing.T) {
		mustFail(t, good[:len(good)-12])
	})
	t.Run("IEND with data", func(t *testing.T) {
		mustFail(t, pngChunk(append([]byte(nil), good[:len(good)-12]...), "IEND", []byte{0}))
	})
	t.Run("no IDAT", func(t *testing.T) {
		mustFail(t, pngChunk(append([]byte(nil), good[:33]...), "IEND", nil))
	})
	t.Run("over the pixel limit", func(t *testing.T) {
		if _, ok := decodePNG(good, 14); ok {
			t.Fatal("fast path took 15 pixels with a limit of 14")
		}
		_, err := Decode(pipeline.Sample{Encoded: good}, 14)
		if err == nil || !pipeline.IsSkip(err) {
			t.Fatalf("got %v", err)
		}
	})
}

// mustFail checks that b fails in the fast path, in decode and in
// image/png.
func mustFail(t *testing.T, b []byte) {
	t.Helper()
	if _, ok := decodePNG(b, DefaultMaxPixels); ok {
		t.Fatal("fast path took it")
	}
	if _, err := png.Decode(bytes.NewReader(b)); err == nil {
		t.Fatal("image/png decodes it")
	}
	if _, err := Decode(pipeline.Sample{Encoded: b, Origin: "test"}, 0); err == nil || !pipeline.IsSkip(err) {
		t.Fatalf("decode: %v", err)
	}
}

// fixCRCs rewrites the CRC of each chunk of b, as far as the chunks parse.
func fixCRCs(b []byte) {
	for pos := 8; pos+12 <= len(b); {
		n := binary.BigEndian.Uint32(b[pos:])
		if int64(n) > int64(len(b)-pos-12) {
			return
		}
		end := pos + 8 + int(n)
		binary.BigEndian.PutUint32(b[end:], crc32.ChecksumIEEE(b[pos+4:end]))
		pos = end + 4
	}
}

// TestDecodePNGAllocs checks that the fast path allocates the image and
// little else. Of stored (uncompressed) deflate blocks it allocates only the
// image (struct and pixels) and zlib's Adler-32 digest. Of Huffman-coded
// blocks, compress/flate also allocates the overflow ("link") tables of codes
// longer than 9 bits, a few hundred bytes a block; bound them to 2 KiB. It
// takes the least of several single calls, since the race detector makes
// sync.Pool drop a quarter of what it is given.
func TestDecodePNGAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, ct := range []int{pngGray, pngGrayAlpha, pngRGB, pngRGBA} {
		for _, level := range []int{zlib.NoCompression, zlib.DefaultCompression} {
			f := randomRaw(rng, pngFile{w: 28, h: 28, ct: ct, level: level, filter: func(y int) byte { return byte(y % 5) }})
			s := pipeline.Sample{Encoded: f.encode(t)}
			pixBytes := 28 * 28 * 4
			if ct == pngGray {
				pixBytes = 28 * 28
			}
			wantMallocs, wantBytes := uint64(3), uint64(pixBytes+256)
			if level != zlib.NoCompression {
				wantMallocs, wantBytes = 100, uint64(pixBytes+2048)
			}
			if _, err := Decode(s, 0); err != nil { // warm the pool
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			mallocs, nbytes := uint64(1<<62), uint64(1<<62)
			for range 20 {
				runtime.ReadMemStats(&before)
				_, err := Decode(s, 0)
				runtime.ReadMemStats(&after)
				if err != nil {
					t.Fatal(err)
				}
				mallocs = min(mallocs, after.Mallocs-before.Mallocs)
				nbytes = min(nbytes, after.TotalAlloc-before.TotalAlloc)
			}
			t.Logf("colour type %d, level %d: %d allocations, %d bytes (pixels: %d)", ct, level, mallocs, nbytes, pixBytes)
			if mallocs > wantMallocs || nbytes > wantBytes {
				t.Errorf("colour type %d, level %d: %d allocations, %d bytes per decode; want ≤ %d and ≤ %d",
					ct, level, mallocs, nbytes, wantMallocs, wantBytes)
			}
		}
	}
}

// FuzzDecodePNG compares the fast path with image/png. With fix set, the
// chunks' CRCs are rewritten first, so that the fuzzer gets past them to
// the chunk layout, the zlib stream and the filters.
func FuzzDecodePNG(f *testing.F) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, ct := range []int{pngGray, pngGrayAlpha, pngRGB, pngRGBA} {
		p := randomRaw(rng, pngFile{w: 5, h: 4, ct: ct, level: 6, filter: func(y int) byte { return byte(y % 5) }})
		f.Add(p.encode(f), true)
		p.idatSize, p.emptyIDATs, p.ancillary, p.filter = 9, true, true, func(y int) byte { return 4 - byte(y%5) }
		f.Add(p.encode(f), false)
	}
	if b, err := os.ReadFile("testdata/flat/a.png"); err == nil {
		f.Add(b, false)
	}
	f.Fuzz(func(t *testing.T, b []byte, fix bool) {
		if fix {
			fixCRCs(b)
		}
		fast, ok := decodePNG(b, 1<<16)
		if !ok {
			return
		}
		ref, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("fast path decoded what image/png rejects: %v", err)
		}
		if err := samePNGImage(fast, ref); err != nil {
			t.Fatal(err)
		}
	})
}
