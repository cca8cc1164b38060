package sources

import (
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"math/bits"
)

// DecodedBytesPerPixel is the byte budget of decoding, per pixel of the
// pixel limit: Decode refuses, from its header, an image whose decoding
// would allocate more than DecodedBytesPerPixel × max_pixels bytes for
// pixels (MaxDecodedBytes). Four bytes a pixel is an 8-bit RGBA image, the
// largest that the common formats decode to, so every 8-bit PNG and every
// baseline gray or YCbCr JPEG within max_pixels passes; what the limit
// stops is the image that costs more than its pixel count says: a 16-bit
// PNG (8 bytes a pixel), an interlaced one (its passes as much again), a
// progressive JPEG (4 bytes of coefficients per colour sample) or a CMYK
// or RGB one (its planes, then the interleaved image).
const DecodedBytesPerPixel = 4

// MaxDecodedBytes is the most bytes Decode lets an image's decoding
// allocate for pixels, with the pixel limit maxPixels (0 or less:
// DefaultMaxPixels): DecodedBytesPerPixel × maxPixels. With
// DefaultMaxPixels it is 256 MiB. To allow larger images, raise max_pixels.
func MaxDecodedBytes(maxPixels int) uint64 {
	if maxPixels <= 0 {
		maxPixels = DefaultMaxPixels
	}
	return mulSat(DecodedBytesPerPixel, uint64(maxPixels))
}

// decodedSize returns the bytes that image/png or image/jpeg allocates for
// the pixels of b, from its header alone, and a description of the pixel
// format for messages ("16-bit RGBA PNG"). format and cfg are what
// image.DecodeConfig returned for b. It counts:
//
//   - the image returned, at the bytes per pixel of its type: Gray and
//     Paletted 1, Gray16 2, RGBA, NRGBA and CMYK 4, RGBA64 and NRGBA64 8,
//     YCbCr its three planes (1.5 to 3 bytes a pixel), padded to whole
//     JPEG blocks;
//   - for an interlaced PNG, its seven passes, decoded each into an image
//     of its own before being merged: as many pixels again;
//   - for a progressive JPEG, the DCT coefficients it keeps between scans:
//     64 int32 per 8×8 block of every component, 4 bytes per sample;
//   - for a JPEG of 4 components (CMYK, YCCK) or of RGB components, the
//     component planes and then the interleaved 4-byte image made of them.
//
// The parsing is that of the decoders; where the header cannot be read
// as they would (which they then fail on), it counts the worst case of the
// colour model.
func decodedSize(b []byte, format string, cfg image.Config) (n uint64, what string) {
	w, h := uint64(max(cfg.Width, 0)), uint64(max(cfg.Height, 0))
	px := mulSat(w, h)
	switch format {
	case "png":
		if n, what, ok := pngDecodedSize(b, px); ok {
			return n, what
		}
	case "jpeg":
		if n, what, ok := jpegDecodedSize(b, cfg); ok {
			return n, what
		}
	}
	// Not reached for the files the decoders read, whose headers the
	// parsers above read as the decoders do; count the worst case of all.
	return mulSat(px, worstBytesPerPixel), fmt.Sprintf("%s image (header not parsed: %d bytes a pixel at most)", format, worstBytesPerPixel)
}

// pngPaletted is the PNG colour type of palette images, not one of the
// fast path's.
const pngPaletted = 3

// worstBytesPerPixel is the most decodedSize counts for a pixel: a
// progressive CMYK JPEG's four planes, their coefficients and the CMYK
// image.
const worstBytesPerPixel = 4 + 4*4 + 4

// pngDecodedSize is decodedSize for a PNG of px pixels whose IHDR
// image.DecodeConfig has read. It walks the chunks before the first IDAT
// for a tRNS chunk, which turns a gray or truecolour image into an NRGBA
// or NRGBA64 one; where that walk fails it assumes one.
func pngDecodedSize(b []byte, px uint64) (n uint64, what string, ok bool) {
	const ihdrEnd = len(pngSignature) + 8 + 13 + 4
	if len(b) < ihdrEnd || string(b[len(pngSignature)+4:len(pngSignature)+8]) != "IHDR" {
		return 0, "", false
	}
	ihdr := b[len(pngSignature)+8:]
	depth, ct, interlaced := int(ihdr[8]), int(ihdr[9]), ihdr[12] == 1
	trns := true // unless the walk below finds the first IDAT without one
	for pos := ihdrEnd; len(b)-pos >= 12; {
		l := uint64(binary.BigEndian.Uint32(b[pos:]))
		typ := string(b[pos+4 : pos+8])
		if typ == "IDAT" {
			trns = false
			break
		}
		if typ == "tRNS" || l > uint64(len(b)-pos-12) {
			break
		}
		pos += 12 + int(l)
	}
	// What image/png returns: Gray or Gray16; Paletted; RGBA or RGBA64;
	// and NRGBA or NRGBA64 for alpha or a tRNS chunk (not for a palette).
	var bpp uint64
	var model string
	switch ct {
	case pngGray:
		bpp, model = 1, "gray"
	case pngRGB:
		bpp, model = 4, "RGB"
	case pngPaletted:
		bpp, model = 1, "paletted"
	case pngGrayAlpha:
		bpp, model = 4, "gray+alpha"
	case pngRGBA:
		bpp, model = 4, "RGBA"
	default:
		return 0, "", false
	}
	if trns && (ct == pngGray || ct == pngRGB) {
		bpp, model = 4, model+"+tRNS"
	}
	if depth == 16 {
		bpp *= 2
	}
	unit := "bytes"
	if bpp == 1 {
		unit = "byte"
	}
	n = mulSat(px, bpp)
	what = fmt.Sprintf("%d-bit %s PNG, %d %s a pixel", depth, model, bpp, unit)
	if interlaced {
		n = mulSat(n, 2)
		what = "interlaced " + what + ", twice for its passes"
	}
	return n, what, true
}

// jpegDecodedSize is decodedSize for a JPEG: it reads the frame header
// (SOF) as image/jpeg does, for the components, their sampling and whether
// the image is progressive; cfg.ColorModel says whether image/jpeg
// interleaves the planes into a CMYK or RGBA image.
func jpegDecodedSize(b []byte, cfg image.Config) (n uint64, what string, ok bool) {
	marker, seg, ok := jpegFrame(b)
	if !ok {
		return 0, "", false
	}
	// SOF: precision, height, width, component count, then per component
	// its id, sampling factors (h<<4 | v) and quantisation table.
	nc := int(seg[5])
	if nc != 1 && nc != 3 && nc != 4 || len(seg) < 6+3*nc {
		return 0, "", false
	}
	var hs, vs [4]uint64
	for i := range nc {
		hv := seg[6+3*i+1]
		hs[i], vs[i] = uint64(max(hv>>4, 1)), uint64(max(hv&0x0f, 1))
		if nc == 1 { // a lone component is never subsampled (see image/jpeg)
			hs[i], vs[i] = 1, 1
		}
	}
	// The planes cover whole MCUs of the first component's sampling.
	w, h := uint64(cfg.Width), uint64(cfg.Height)
	mxx, myy := (w+8*hs[0]-1)/(8*hs[0]), (h+8*vs[0]-1)/(8*vs[0])
	var samples uint64
	for i := range nc {
		samples += mulSat(mulSat(8*hs[i], mxx), mulSat(8*vs[i], myy))
	}
	n, kind, parts := samples, "", "planes"
	if marker == 0xc2 {
		n = addSat(n, mulSat(4, samples)) // a block of 64 int32 per 64 samples
		kind, parts = "progressive ", "planes, coefficients"
	}
	// CMYK, YCCK and RGB planes are interleaved into a CMYK or RGBA image.
	if nc == 4 || cfg.ColorModel == color.RGBAModel {
		n = addSat(n, mulSat(4, mulSat(w, h)))
		parts += ", 4-byte-a-pixel image"
	}
	what = fmt.Sprintf("%s%d-component JPEG: %s", kind, nc, parts)
	return n, what, true
}

// jpegFrame returns the marker (0xc0, 0xc1 or 0xc2) and the data of the
// frame header of a JPEG, skipping the segments before it as image/jpeg
// does (extraneous bytes, fill bytes, restart markers).
func jpegFrame(b []byte) (marker byte, seg []byte, ok bool) {
	if len(b) < 2 || b[0] != 0xff || b[1] != 0xd8 {
		return 0, nil, false
	}
	for i := 2; i+1 < len(b); {
		if b[i] != 0xff { // extraneous data
			i++
			continue
		}
		m := b[i+1]
		i += 2
		for m == 0xff && i < len(b) { // fill bytes
			m = b[i]
			i++
		}
		switch {
		case m == 0 || m == 0xff || 0xd0 <= m && m <= 0xd7: // "\xff\x00", restarts
			continue
		case m == 0xd9 || m == 0xda: // EOI, SOS: no frame header before the data
			return 0, nil, false
		}
		if i+2 > len(b) {
			return 0, nil, false
		}
		l := int(b[i])<<8 | int(b[i+1])
		if l < 2 || i+l > len(b) {
			return 0, nil, false
		}
		if m == 0xc0 || m == 0xc1 || m == 0xc2 {
			seg = b[i+2 : i+l]
			return m, seg, len(seg) >= 6
		}
		i += l
	}
	return 0, nil, false
}

// mulSat is a × b, or the largest uint64 where that overflows.
func mulSat(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	if hi != 0 {
		return ^uint64(0)
	}
	return lo
}

// addSat is a + b, or the largest uint64 where that overflows.
func addSat(a, b uint64) uint64 {
	s, carry := bits.Add64(a, b, 0)
	if carry != 0 {
		return ^uint64(0)
	}
	return s
}
