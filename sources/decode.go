package sources

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // register the JPEG decoder for Decode
	_ "image/png"  // register the PNG decoder for Decode

	"github.com/contrastream/contrastream/pipeline"
)

// Decode returns the image of s: s.Image when the source had raw pixels,
// else s.Encoded decoded as PNG or JPEG. It reads the image's header first
// and refuses, before decoding, an image of zero size, of more than
// maxPixels pixels (0 or less: DefaultMaxPixels), or whose decoding would
// allocate more than MaxDecodedBytes(maxPixels) bytes for its pixels (a
// 16-bit, interlaced or progressive image, say; see DecodedBytesPerPixel),
// so that a decompression bomb costs nothing. Every failure (no bytes, as
// from a null image cell; bytes that are not an image; zero size; over a
// limit; corrupt data) is a *pipeline.SkipError naming s.Origin: the
// sample is to be skipped and counted, not to stop the flow. So is a file
// an image folder did not read because it is over the folder's byte limit.
//
// The common PNGs (8-bit gray, gray+alpha, RGB or RGBA, not interlaced:
// at most 4 bytes a pixel, so within the byte limit) take a fast path that
// allocates little but the image, with a pooled zlib reader; it returns
// what image/png would (see decodePNG). Every other file is decoded by
// image/png or image/jpeg.
//
// Decode is safe for concurrent use; it is meant to run inside the
// augmentation pool, so that decoding runs in parallel.
func Decode(s pipeline.Sample, maxPixels int) (image.Image, error) {
	img, _, err := decode(s, maxPixels)
	return img, err
}

// The formats decode reports besides the image formats' names ("png",
// "jpeg").
const (
	formatRaw     = "raw"     // s.Image: raw pixels from the source
	formatNone    = "none"    // no bytes (a null or empty image cell)
	formatUnread  = "unread"  // a file the source did not read (unreadImage)
	formatUnknown = "unknown" // bytes that are not a known image format
)

// decode is Decode, and also returns the format of s, read from the
// image's header: known even when decoding fails after the header.
func decode(s pipeline.Sample, maxPixels int) (img image.Image, format string, err error) {
	if maxPixels <= 0 {
		maxPixels = DefaultMaxPixels
	}
	if u, ok := s.Image.(*unreadImage); ok {
		return nil, formatUnread, pipeline.Skip(s.Origin, u.reason)
	}
	if s.Image != nil {
		b := s.Image.Bounds()
		if err := checkSize(b.Dx(), b.Dy(), maxPixels); err != nil {
			return nil, formatRaw, pipeline.Skip(s.Origin, err)
		}
		return s.Image, formatRaw, nil
	}
	if len(s.Encoded) == 0 {
		return nil, formatNone, pipeline.Skip(s.Origin, errors.New("no image: null or empty image bytes"))
	}
	format = formatUnknown
	defer func() {
		if r := recover(); r != nil {
			img, err = nil, pipeline.Skip(s.Origin, fmt.Errorf("corrupt image: decoder panicked: %v", r))
		}
	}()
	// The common PNGs take a fast path that allocates little but the image;
	// every other file, and every PNG it does not take, goes on below.
	if img, ok := decodePNG(s.Encoded, maxPixels); ok {
		return img, "png", nil
	}
	cfg, name, err := image.DecodeConfig(bytes.NewReader(s.Encoded))
	if name != "" {
		format = name
	}
	if err != nil {
		if errors.Is(err, image.ErrFormat) {
			return nil, format, pipeline.Skip(s.Origin, fmt.Errorf("not a PNG or JPEG image (%d bytes starting %q)", len(s.Encoded), head(s.Encoded)))
		}
		return nil, format, pipeline.Skip(s.Origin, fmt.Errorf("corrupt image header: %w", err))
	}
	if err := checkSize(cfg.Width, cfg.Height, maxPixels); err != nil {
		return nil, format, pipeline.Skip(s.Origin, err)
	}
	if n, what := decodedSize(s.Encoded, format, cfg); n > MaxDecodedBytes(maxPixels) {
		return nil, format, pipeline.Skip(s.Origin, fmt.Errorf("image is %d×%d, %d bytes decoded (%s), over the limit of %d bytes (%d a pixel of max_pixels %d)",
			cfg.Width, cfg.Height, n, what, MaxDecodedBytes(maxPixels), DecodedBytesPerPixel, maxPixels))
	}
	img, _, err = image.Decode(bytes.NewReader(s.Encoded))
	if err != nil {
		return nil, format, pipeline.Skip(s.Origin, fmt.Errorf("corrupt %s image: %w", format, err))
	}
	if b := img.Bounds(); b.Dx() != cfg.Width || b.Dy() != cfg.Height {
		return nil, format, pipeline.Skip(s.Origin, fmt.Errorf("corrupt %s image: header says %d×%d, pixels are %d×%d", format, cfg.Width, cfg.Height, b.Dx(), b.Dy()))
	}
	return img, format, nil
}

// unreadImage stands, as a Sample's Image, for an image a source did not
// read (an image folder's file over its byte limit): Decode returns reason
// as the sample's skip. To anything else it is an empty image, which no
// encoder accepts, so that it cannot pass for a real one.
type unreadImage struct{ reason error }

func (*unreadImage) ColorModel() color.Model { return color.GrayModel }
func (*unreadImage) Bounds() image.Rectangle { return image.Rectangle{} }
func (*unreadImage) At(int, int) color.Color { return color.Gray{} }

func checkSize(w, h, maxPixels int) error {
	if w <= 0 || h <= 0 {
		return fmt.Errorf("zero-size image (%d×%d)", w, h)
	}
	if int64(w)*int64(h) > int64(maxPixels) {
		return fmt.Errorf("image is %d×%d = %d pixels, over the limit of %d (max_pixels)", w, h, int64(w)*int64(h), maxPixels)
	}
	return nil
}

// head returns the first bytes of b, for error messages.
func head(b []byte) []byte {
	return b[:min(len(b), 8)]
}
