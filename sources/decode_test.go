package sources_test

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"os"
	"strings"
	"testing"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sources"
)

// pngWithSize returns a copy of a PNG whose header claims w×h.
func pngWithSize(b []byte, w, h uint32) []byte {
	b = append([]byte(nil), b...)
	binary.BigEndian.PutUint32(b[16:], w)
	binary.BigEndian.PutUint32(b[20:], h)
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
	return b
}

func TestDecode(t *testing.T) {
	png, jpg := testPNG(t, 3), testJPEG(t, 3)
	tests := []struct {
		name      string
		s         pipeline.Sample
		maxPixels int
		want      string // "" for success, else text of the skip error
		w, h      int
	}{
		{name: "png", s: pipeline.Sample{Encoded: png}, w: 8, h: 6},
		{name: "jpeg", s: pipeline.Sample{Encoded: jpg}, w: 16, h: 16},
		{name: "raw pixels", s: pipeline.Sample{Image: testImage(1)}, w: 8, h: 6},
		{name: "at the limit", s: pipeline.Sample{Encoded: png}, maxPixels: 48, w: 8, h: 6},
		{name: "null image", s: pipeline.Sample{}, want: "no image: null or empty"},
		{name: "empty bytes", s: pipeline.Sample{Encoded: []byte{}}, want: "no image: null or empty"},
		{name: "not an image", s: pipeline.Sample{Encoded: []byte("GIF89a, or text")}, want: "not a PNG or JPEG image"},
		{name: "over the limit", s: pipeline.Sample{Encoded: png}, maxPixels: 47, want: "8×6 = 48 pixels, over the limit of 47"},
		{name: "raw pixels over the limit", s: pipeline.Sample{Image: testImage(1)}, maxPixels: 10, want: "over the limit of 10"},
		{name: "decompression bomb", s: pipeline.Sample{Encoded: pngWithSize(png, 100000, 100000)}, want: "100000×100000 = 10000000000 pixels, over the limit of 67108864"},
		{name: "zero width", s: pipeline.Sample{Encoded: pngWithSize(png, 0, 6)}, want: "non-positive dimension"},
		{name: "zero-size raw pixels", s: pipeline.Sample{Image: image.NewGray(image.Rect(0, 0, 0, 3))}, want: "zero-size image (0×3)"},
		{name: "truncated png", s: pipeline.Sample{Encoded: png[:len(png)-20]}, want: "corrupt png image"},
		{name: "truncated jpeg", s: pipeline.Sample{Encoded: jpg[:len(jpg)/2]}, want: "corrupt image"},
		{name: "png with a lying header", s: pipeline.Sample{Encoded: pngWithSize(png, 9, 6)}, want: "corrupt png image"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.s.Origin = "data.parquet row 17"
			img, err := sources.Decode(tt.s, tt.maxPixels)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if b := img.Bounds(); b.Dx() != tt.w || b.Dy() != tt.h {
					t.Fatalf("bounds %v, want %d×%d", b, tt.w, tt.h)
				}
				return
			}
			var skip *pipeline.SkipError
			if !errors.As(err, &skip) {
				t.Fatalf("error %v is not a *pipeline.SkipError", err)
			}
			if skip.Origin != "data.parquet row 17" || !strings.HasPrefix(err.Error(), "data.parquet row 17: ") {
				t.Errorf("error does not name the sample: %v", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q lacks %q", err, tt.want)
			}
		})
	}
}

// TestDecodeFolderJPEG decodes the JPEG of the test folder.
func TestDecodeFolderJPEG(t *testing.T) {
	b, err := os.ReadFile("testdata/folder/triangle/more/e.jpg")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sources.Decode(pipeline.Sample{Encoded: b}, 0); err != nil {
		t.Fatal(err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, p := range []string{"testdata/flat/a.png", "testdata/folder/triangle/more/e.jpg"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	png := testPNG(f, 1)
	f.Add(pngWithSize(png, 0, 1))
	f.Add(pngWithSize(png, 1<<20, 1<<20))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		const limit = 1 << 20
		img, err := sources.Decode(pipeline.Sample{Encoded: b, Origin: "fuzz"}, limit)
		if err != nil {
			if !pipeline.IsSkip(err) {
				t.Fatalf("error is not a skip: %v", err)
			}
			return
		}
		bd := img.Bounds()
		if bd.Dx() <= 0 || bd.Dy() <= 0 || bd.Dx()*bd.Dy() > limit {
			t.Fatalf("accepted an image of %v", bd)
		}
	})
}
