package sources

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"image/color/palette"
	"image/jpeg"
	"image/png"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/contrastream/contrastream/pipeline"
)

// craftPNG returns a PNG whose header declares a w×h image of the given bit
// depth, colour type and interlacing, with the chunks extra (type, data
// pairs) before its IDAT, which holds a valid zlib stream of a few bytes:
// far fewer than the image needs, so decoding it fails, after the header.
func craftPNG(t testing.TB, w, h uint32, depth, ct, interlace byte, extra ...string) []byte {
	t.Helper()
	out := []byte(pngSignature)
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, depth, ct, 0, 0, interlace)
	out = pngChunk(out, "IHDR", ihdr)
	for i := 0; i < len(extra); i += 2 {
		out = pngChunk(out, extra[i], []byte(extra[i+1]))
	}
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(make([]byte, 64))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	out = pngChunk(out, "IDAT", z.Bytes())
	return pngChunk(out, "IEND", nil)
}

// craftJPEG returns a JPEG of a frame header (SOF marker sof: 0xc0
// baseline, 0xc2 progressive) declaring w×h with one component per entry of
// ids (its id and sampling factors, h<<4|v), after an Adobe APP14 segment
// with the given transform when adobe ≥ 0, and an empty scan: what
// image.DecodeConfig reads, and no image.
func craftJPEG(sof byte, w, h int, adobe int, comps ...[2]byte) []byte {
	out := []byte{0xff, 0xd8}
	seg := func(m byte, data []byte) {
		out = append(out, 0xff, m, byte((len(data)+2)>>8), byte(len(data)+2))
		out = append(out, data...)
	}
	if adobe >= 0 {
		seg(0xee, []byte{'A', 'd', 'o', 'b', 'e', 0, 100, 0, 0, 0, 0, byte(adobe)})
	}
	f := []byte{8, byte(h >> 8), byte(h), byte(w >> 8), byte(w), byte(len(comps))}
	for _, c := range comps {
		f = append(f, c[0], c[1], 0)
	}
	seg(sof, f)
	s := []byte{byte(len(comps))}
	for _, c := range comps {
		s = append(s, c[0], 0)
	}
	seg(0xda, append(s, 0, 0, 0))
	return append(out, 0xff, 0xd9)
}

var (
	gray1  = [][2]byte{{1, 0x11}}
	ycc420 = [][2]byte{{1, 0x22}, {2, 0x11}, {3, 0x11}}
	ycc444 = [][2]byte{{1, 0x11}, {2, 0x11}, {3, 0x11}}
	rgb    = [][2]byte{{'R', 0x11}, {'G', 0x11}, {'B', 0x11}}
	cmyk   = [][2]byte{{1, 0x11}, {2, 0x11}, {3, 0x11}, {4, 0x11}}
	plte   = "\x00\x00\x00\xff\xff\xff"
)

// TestDecodeRefusesByDecodedBytes checks that Decode refuses, from the
// header alone, an image within max_pixels whose decoding would allocate
// more than DecodedBytesPerPixel bytes a pixel of it, and lets the others
// through to the decoder (which fails on these crafted files, as
// "corrupt", having passed the limit).
func TestDecodeRefusesByDecodedBytes(t *testing.T) {
	const mp = 1 << 20 // 1024×1024 pixels: a limit of 4 MiB
	tests := []struct {
		name string
		b    []byte
		// want is the skip's reason: "over ..." for a refusal, else
		// "corrupt", for a file that went on to be decoded.
		want string
	}{
		{"16-bit RGBA PNG", craftPNG(t, 1024, 1024, 16, pngRGBA, 0),
			"image is 1024×1024, 8388608 bytes decoded (16-bit RGBA PNG, 8 bytes a pixel), over the limit of 4194304 bytes (4 a pixel of max_pixels 1048576)"},
		{"16-bit RGBA PNG at the limit", craftPNG(t, 1024, 512, 16, pngRGBA, 0), "corrupt png image"},
		{"16-bit RGBA PNG one row over", craftPNG(t, 1024, 513, 16, pngRGBA, 0),
			"image is 1024×513, 4202496 bytes decoded (16-bit RGBA PNG, 8 bytes a pixel), over the limit of 4194304 bytes"},
		{"16-bit RGB PNG", craftPNG(t, 1024, 1024, 16, pngRGB, 0), "8388608 bytes decoded (16-bit RGB PNG, 8 bytes a pixel), over"},
		{"16-bit gray+alpha PNG", craftPNG(t, 1024, 1024, 16, pngGrayAlpha, 0), "8388608 bytes decoded (16-bit gray+alpha PNG, 8 bytes a pixel), over"},
		{"16-bit gray PNG", craftPNG(t, 1024, 1024, 16, pngGray, 0), "corrupt png image"},
		{"16-bit gray PNG with tRNS", craftPNG(t, 1024, 1024, 16, pngGray, 0, "tRNS", "\x00\x01"),
			"8388608 bytes decoded (16-bit gray+tRNS PNG, 8 bytes a pixel), over"},
		{"8-bit RGB PNG with tRNS", craftPNG(t, 1024, 1024, 8, pngRGB, 0, "tRNS", "\x00\x01\x00\x02\x00\x03"), "corrupt png image"},
		{"8-bit RGBA PNG", craftPNG(t, 1024, 1024, 8, pngRGBA, 0), "corrupt png image"},
		{"8-bit paletted PNG", craftPNG(t, 1024, 1024, 8, pngPaletted, 0, "PLTE", plte), "corrupt png image"},
		{"interlaced 8-bit RGBA PNG", craftPNG(t, 1024, 1024, 8, pngRGBA, 1),
			"8388608 bytes decoded (interlaced 8-bit RGBA PNG, 4 bytes a pixel, twice for its passes), over"},
		{"interlaced 8-bit gray PNG", craftPNG(t, 1024, 1024, 8, pngGray, 1), "corrupt png image"},

		{"baseline gray JPEG", craftJPEG(0xc0, 1024, 1024, -1, gray1...), "corrupt jpeg image"},
		{"baseline 4:2:0 JPEG", craftJPEG(0xc0, 1024, 1024, -1, ycc420...), "corrupt jpeg image"},
		{"baseline 4:4:4 JPEG", craftJPEG(0xc0, 1024, 1024, -1, ycc444...), "corrupt jpeg image"},
		{"progressive gray JPEG", craftJPEG(0xc2, 1024, 1024, -1, gray1...),
			"5242880 bytes decoded (progressive 1-component JPEG: planes, coefficients), over the limit of 4194304 bytes"},
		{"progressive 4:2:0 JPEG", craftJPEG(0xc2, 1024, 1024, -1, ycc420...),
			"7864320 bytes decoded (progressive 3-component JPEG: planes, coefficients), over"},
		// Planes and the 4-byte image: 3 + 4 and 4 + 4 bytes a pixel.
		{"baseline RGB JPEG", craftJPEG(0xc0, 1024, 1024, -1, rgb...),
			"7340032 bytes decoded (3-component JPEG: planes, 4-byte-a-pixel image), over"},
		{"baseline CMYK JPEG", craftJPEG(0xc0, 1024, 1024, 0, cmyk...),
			"8388608 bytes decoded (4-component JPEG: planes, 4-byte-a-pixel image), over"},
		{"baseline YCCK JPEG", craftJPEG(0xc0, 1024, 1024, 2, cmyk...), "8388608 bytes decoded (4-component JPEG"},
		// Planes padded to whole blocks: 1024×1024, not 1017×1017.
		{"progressive gray JPEG, padded", craftJPEG(0xc2, 1017, 1017, -1, gray1...), "5242880 bytes decoded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(pipeline.Sample{Encoded: tt.b, Origin: "x.parquet row 3"}, mp)
			var skip *pipeline.SkipError
			if !errors.As(err, &skip) || skip.Origin != "x.parquet row 3" {
				t.Fatalf("error %v, want a *pipeline.SkipError of x.parquet row 3", err)
			}
			if !strings.Contains(skip.Err.Error(), tt.want) {
				t.Errorf("reason %q lacks %q", skip.Err, tt.want)
			}
		})
	}
}

// TestDecodeBombCostsNothing decodes files whose headers declare 8192×8192
// images, within DefaultMaxPixels, of 8 and 7.5 bytes a pixel: 512 and 480
// MiB, over the default limit of 256 MiB. Each is refused from its header,
// allocating next to nothing.
func TestDecodeBombCostsNothing(t *testing.T) {
	for _, tt := range []struct {
		name, want string
		b          []byte
	}{
		{"16-bit RGBA PNG", "image is 8192×8192, 536870912 bytes decoded (16-bit RGBA PNG, 8 bytes a pixel), over the limit of 268435456 bytes (4 a pixel of max_pixels 67108864)",
			craftPNG(t, 8192, 8192, 16, pngRGBA, 0)},
		{"progressive JPEG", "image is 8192×8192, 503316480 bytes decoded (progressive 3-component JPEG: planes, coefficients), over the limit of 268435456 bytes (4 a pixel of max_pixels 67108864)",
			craftJPEG(0xc2, 8192, 8192, -1, ycc420...)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := Decode(pipeline.Sample{Encoded: tt.b, Origin: "bomb.png"}, 0)
			runtime.ReadMemStats(&after)
			if err == nil || !pipeline.IsSkip(err) || err.Error() != "bomb.png: "+tt.want {
				t.Errorf("error %v, want a skip: bomb.png: %s", err, tt.want)
			}
			if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
				t.Errorf("Decode allocated %d bytes for a file of %d", n, len(tt.b))
			}
		})
	}
}

// TestDecodedSizeMatchesDecoders checks decodedSize against what the
// decoders return for real files: the bytes of the image's pixels.
func TestDecodedSizeMatchesDecoders(t *testing.T) {
	r := image.Rect(0, 0, 37, 23)
	pal := image.NewPaletted(r, palette.Plan9)
	for _, tt := range []struct {
		name string
		img  image.Image
		jpeg bool
	}{
		{"gray", image.NewGray(r), false},
		{"gray16", image.NewGray16(r), false},
		{"rgba", image.NewRGBA(r), false},
		{"nrgba", image.NewNRGBA(r), false},
		{"rgba64", image.NewRGBA64(r), false},
		{"nrgba64", image.NewNRGBA64(r), false},
		{"paletted", pal, false},
		{"gray jpeg", image.NewGray(r), true},
		{"colour jpeg", image.NewRGBA(r), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Opaque pixels but for the NRGBA images, as the encoders then
			// keep the colour type.
			if m, ok := tt.img.(interface{ Set(int, int, color.Color) }); ok && tt.name != "paletted" {
				for y := range 23 {
					for x := range 37 {
						c := color.Color(color.RGBA64{uint16(x * 1000), uint16(y * 2000), 7, 0xffff})
						if strings.HasPrefix(tt.name, "nrgba") { // with alpha
							c = color.NRGBA64{uint16(x * 1000), uint16(y * 2000), 7, 0x8000}
						}
						m.Set(x, y, c)
					}
				}
			}
			var buf bytes.Buffer
			var err error
			if tt.jpeg {
				err = jpeg.Encode(&buf, tt.img, nil)
			} else {
				err = png.Encode(&buf, tt.img)
			}
			if err != nil {
				t.Fatal(err)
			}
			b := buf.Bytes()
			cfg, format, err := image.DecodeConfig(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			img, _, err := image.Decode(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			var pix int
			if m, ok := img.(*image.YCbCr); ok {
				pix = len(m.Y) + len(m.Cb) + len(m.Cr)
			} else {
				pix = reflect.ValueOf(img).Elem().FieldByName("Pix").Len()
			}
			n, what := decodedSize(b, format, cfg)
			t.Logf("%T: %s, %d bytes", img, what, n)
			if n != uint64(pix) {
				t.Errorf("%T of %d pixel bytes: decodedSize says %d (%s)", img, pix, n, what)
			}
		})
	}
}
