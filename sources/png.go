package sources

import (
	"compress/zlib"
	"encoding/binary"
	"hash/crc32"
	"image"
	"io"
	"sync"
)

// decodePNG is decode's fast path for the PNGs that training data is made
// of: 8-bit grayscale, gray+alpha, RGB or RGBA (colour types 0, 4, 2, 6),
// not interlaced, without a tRNS chunk, and of at most maxPixels pixels. It
// returns what image/png's Decode returns for such a file, the same concrete
// type with the same pixels: *image.Gray for grayscale, *image.RGBA for RGB,
// *image.NRGBA for gray+alpha and RGBA.
//
// Its only allocation of note is the returned image: the zlib reader (with
// flate's 32 KiB window and Huffman tables) and the row buffers come from a
// sync.Pool, the IDAT chunks are read in place from b, never copied.
//
// It checks the file at least as strictly as image/png does: the signature;
// an IHDR first; the CRC of every chunk up to IEND (as image/png does);
// the chunk order; no critical chunk but IHDR, IDAT and IEND; consecutive
// IDATs whose data is exactly one zlib stream (header, deflate data, Adler-32
// checksum) holding exactly the image's filtered rows; known filter types.
// Bytes after IEND are ignored, as image/png ignores them. So when it
// returns ok, image/png would return the same image without error. For
// anything else (another format, palette, 16-bit, fewer than 8 bits,
// interlacing, transparency, odd chunk layouts, too many pixels, and every
// corrupt or truncated file) it returns ok == false having allocated nothing
// but the state it pools, and decode decodes b with image/png, which gives
// the image or the error it always gave, and the size check before it
// decompresses. A corrupt file costs a second parse; a good one costs one.
func decodePNG(b []byte, maxPixels int) (img image.Image, ok bool) {
	h, ok := parsePNG(b, maxPixels)
	if !ok {
		return nil, false
	}
	st := pngStates.Get().(*pngState)
	defer st.release()
	first := int(binary.BigEndian.Uint32(b[h.idat-8:]))
	st.r = idatReader{b: b, pos: h.idat, end: h.idat + first, runEnd: h.runEnd}
	if st.z == nil {
		z, err := zlib.NewReader(&st.r)
		if err != nil {
			return nil, false
		}
		st.z = z
	} else if err := st.z.(zlib.Resetter).Reset(&st.r, nil); err != nil {
		return nil, false
	}

	var (
		gray  *image.Gray
		rgba  *image.RGBA
		nrgba *image.NRGBA
		pix   []byte
		bpp   = 4 // bytes per pixel in the file
		obpp  = 4 // bytes per pixel in img
	)
	r := image.Rect(0, 0, h.w, h.h)
	switch h.colorType {
	case pngGray:
		gray, bpp, obpp = image.NewGray(r), 1, 1
		img, pix = gray, gray.Pix
	case pngRGB:
		rgba, bpp = image.NewRGBA(r), 3
		img, pix = rgba, rgba.Pix
	case pngGrayAlpha:
		nrgba, bpp = image.NewNRGBA(r), 2
		img, pix = nrgba, nrgba.Pix
	case pngRGBA:
		nrgba = image.NewNRGBA(r)
		img, pix = nrgba, nrgba.Pix
	}
	cr, pr := st.rows(1 + h.w*bpp)
	clear(pr)
	for y := range h.h {
		if _, err := io.ReadFull(st.z, cr); err != nil {
			return nil, false
		}
		if !unfilter(cr[0], cr[1:], pr[1:], bpp) {
			return nil, false
		}
		row, out := cr[1:], pix[y*h.w*obpp:]
		switch h.colorType {
		case pngGray, pngRGBA:
			copy(out, row)
		case pngRGB:
			for x := range h.w {
				out[4*x], out[4*x+1], out[4*x+2], out[4*x+3] = row[3*x], row[3*x+1], row[3*x+2], 0xff
			}
		case pngGrayAlpha:
			for x := range h.w {
				g := row[2*x]
				out[4*x], out[4*x+1], out[4*x+2], out[4*x+3] = g, g, g, row[2*x+1]
			}
		}
		cr, pr = pr, cr
	}
	// The rows must be all the stream holds: read to its end, which also
	// checks its Adler-32 checksum, as image/png does.
	n, err := 0, error(nil)
	for i := 0; n == 0 && err == nil; i++ {
		if i == 100 {
			return nil, false
		}
		n, err = st.z.Read(st.one[:])
	}
	if n != 0 || err != io.EOF || !st.r.done() {
		return nil, false
	}
	return img, true
}

// The colour types of the fast path (PNG spec, 11.2.2).
const (
	pngGray      = 0
	pngRGB       = 2
	pngGrayAlpha = 4
	pngRGBA      = 6
)

// pngSignature starts every PNG file.
const pngSignature = "\x89PNG\r\n\x1a\n"

// pngHeader is what parsePNG learns of a file.
type pngHeader struct {
	w, h, colorType int
	idat            int // offset of the first IDAT chunk's data
	runEnd          int // offset of the first chunk after the IDATs that follow it
}

// parsePNG checks the chunks of b and returns its header, or ok == false
// where b is not a PNG for decodePNG (see there). It decompresses nothing.
func parsePNG(b []byte, maxPixels int) (h pngHeader, ok bool) {
	const ihdrEnd = len(pngSignature) + 8 + 13 + 4
	if len(b) < ihdrEnd || string(b[:len(pngSignature)]) != pngSignature {
		return h, false
	}
	c := b[len(pngSignature):ihdrEnd]
	if binary.BigEndian.Uint32(c) != 13 || string(c[4:8]) != "IHDR" ||
		crc32.ChecksumIEEE(c[4:21]) != binary.BigEndian.Uint32(c[21:]) {
		return h, false
	}
	w, ht := binary.BigEndian.Uint32(c[8:]), binary.BigEndian.Uint32(c[12:])
	depth, ct, compression, filter, interlace := c[16], int(c[17]), c[18], c[19], c[20]
	if depth != 8 || compression != 0 || filter != 0 || interlace != 0 ||
		(ct != pngGray && ct != pngRGB && ct != pngGrayAlpha && ct != pngRGBA) {
		return h, false
	}
	// Positive as int32, as image/png requires, and within the limit, with
	// room for 4 bytes a pixel in an int.
	const maxInt = int64(^uint(0) >> 1)
	if w == 0 || ht == 0 || w > 1<<31-1 || ht > 1<<31-1 ||
		int64(w)*int64(ht) > int64(maxPixels) || int64(w)*int64(ht) > maxInt/4-1 {
		return h, false
	}
	h = pngHeader{w: int(w), h: int(ht), colorType: ct}

	// Then ancillary chunks, a run of IDATs, ancillary chunks and IEND.
	const (
		beforeIDAT = iota
		inIDAT
		afterIDAT
	)
	stage := beforeIDAT
	for pos := ihdrEnd; ; {
		if len(b)-pos < 12 {
			return h, false
		}
		n := binary.BigEndian.Uint32(b[pos:])
		if n > 0x7fffffff || int64(n) > int64(len(b)-pos-12) {
			return h, false
		}
		end := pos + 8 + int(n) // of the data; the CRC follows
		typ := b[pos+4 : pos+8]
		if crc32.ChecksumIEEE(b[pos+4:end]) != binary.BigEndian.Uint32(b[end:]) {
			return h, false
		}
		switch {
		case string(typ) == "IDAT":
			switch stage {
			case beforeIDAT:
				stage, h.idat = inIDAT, pos+8
			case afterIDAT: // image/png may ignore it, or not: let it decide
				return h, false
			}
		case stage == inIDAT:
			stage, h.runEnd = afterIDAT, pos
			fallthrough
		default:
			if string(typ) == "IEND" && stage == afterIDAT && n == 0 {
				return h, true
			}
			// Ancillary chunks but tRNS, which changes the image's type,
			// are skipped; critical ones (PLTE, an early IEND) are not ours.
			if typ[0]&0x20 == 0 || string(typ) == "tRNS" {
				return h, false
			}
		}
		pos = end + 4
	}
}

// unfilter reverses filter ft of the PNG spec (9.2) on row cur, given the
// previous row prev (zeros for the first row) and the bytes per pixel; it
// reports false for an unknown filter. It computes what image/png does.
func unfilter(ft byte, cur, prev []byte, bpp int) bool {
	switch ft {
	case 0: // None
	case 1: // Sub
		for i := bpp; i < len(cur); i++ {
			cur[i] += cur[i-bpp]
		}
	case 2: // Up
		prev = prev[:len(cur)]
		for i, p := range prev {
			cur[i] += p
		}
	case 3: // Average
		prev = prev[:len(cur)]
		for i := range bpp {
			cur[i] += prev[i] / 2
		}
		for i := bpp; i < len(cur); i++ {
			cur[i] += uint8((int(cur[i-bpp]) + int(prev[i])) / 2)
		}
	case 4: // Paeth
		prev = prev[:len(cur)]
		for i := range bpp {
			cur[i] += prev[i] // paeth(0, b, 0) is b
		}
		for i := bpp; i < len(cur); i++ {
			cur[i] += paeth(cur[i-bpp], prev[i], prev[i-bpp])
		}
	default:
		return false
	}
	return true
}

// paeth is the Paeth predictor of the PNG spec (9.4): of a (left), b (up)
// and c (up left), the one nearest to a+b-c, ties going to a, then b.
func paeth(a, b, c uint8) uint8 {
	pa := int(b) - int(c) // |p-a| with p = a+b-c
	pb := int(a) - int(c) // |p-b|
	pc := pa + pb         // |p-c|
	pa, pb, pc = absInt(pa), absInt(pb), absInt(pc)
	if pa <= pb && pa <= pc {
		return a
	}
	if pb <= pc {
		return b
	}
	return c
}

func absInt(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// pngState is what decodePNG reuses from one image to the next.
type pngState struct {
	z      io.ReadCloser // a zlib reader, reset for each image; nil until one first reads a valid header
	r      idatReader
	cr, pr []byte // the current and the previous row, filter byte first
	one    [1]byte
}

// pngStates holds the pngStates not in use. Each holds about 40 KiB (flate's
// window and tables) plus two rows.
var pngStates = sync.Pool{New: func() any { return new(pngState) }}

// maxPooledRow is the longest row buffer a pooled pngState keeps, so that
// one huge image does not pin its rows for good.
const maxPooledRow = 64 << 10

// rows returns the two row buffers, of n bytes each.
func (st *pngState) rows(n int) (cr, pr []byte) {
	if cap(st.cr) < n {
		st.cr, st.pr = make([]byte, n), make([]byte, n)
	}
	return st.cr[:n], st.pr[:n]
}

// release returns st to the pool, holding on to no bytes of the image.
func (st *pngState) release() {
	st.r = idatReader{}
	if cap(st.cr) > maxPooledRow {
		st.cr, st.pr = nil, nil
	}
	pngStates.Put(st)
}

// idatReader reads the data of a run of consecutive IDAT chunks of a PNG
// file, in place, as one stream. It is an io.ByteReader, so that flate reads
// from it directly, not through a bufio.Reader of its own. The chunks were
// checked by parsePNG.
type idatReader struct {
	b        []byte
	pos, end int // the unread data of the current chunk is b[pos:end]
	runEnd   int // the offset of the chunk after the run
}

// more moves to the next chunk of the run with data left, and reports
// whether there is one.
func (r *idatReader) more() bool {
	for r.pos == r.end {
		c := r.end + 4 // past the CRC
		if r.end == 0 || c >= r.runEnd {
			return false
		}
		r.pos, r.end = c+8, c+8+int(binary.BigEndian.Uint32(r.b[c:]))
	}
	return true
}

func (r *idatReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if !r.more() {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.pos:r.end])
	r.pos += n
	return n, nil
}

func (r *idatReader) ReadByte() (byte, error) {
	if !r.more() {
		return 0, io.EOF
	}
	c := r.b[r.pos]
	r.pos++
	return c, nil
}

// done reports whether every byte of the run was read.
func (r *idatReader) done() bool { return !r.more() }
