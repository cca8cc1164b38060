package sources

import (
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"io"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"strconv"

	"github.com/contrastream/contrastream/pipeline"
)

// FormatIDX is the IDX (MNIST) format: an images file and an optional
// labels file (Config.Labels), each gzipped or not, recognised by their
// magic numbers 0x00000803 and 0x00000801.
const FormatIDX = "idx"

func init() {
	RegisterFormat(Format{
		Name:  FormatIDX,
		Order: 40,
		Magic: func(head []byte) bool {
			return len(head) >= 4 && head[0] == 0 && head[1] == 0 && head[2] == 0x08 && (head[3] == 1 || head[3] == 3)
		},
		LabelsFile: true,
		Open: func(c Config, paths []string) (Dataset, error) {
			if len(paths) != 1 {
				return nil, fmt.Errorf("sources: path: an idx dataset takes one images file (and labels), got %d paths", len(paths))
			}
			return OpenIDX(paths[0], c.Labels, c.maxPixels())
		},
	})
}

// idxChunkBytes is the target size of an IDX chunk's pixels: 1 MiB, 1337
// images of 28×28.
const idxChunkBytes = 1 << 20

// idxDataset reads an IDX (MNIST format) images file and an optional labels
// file: each image becomes an *image.Gray (the source's raw pixels: no PNG
// round trip). A gzipped file (first bytes 1f 8b) is decompressed once at
// Open into an anonymous temporary file, so that chunks are read by
// position; memory holds one chunk. ReadChunk is safe for concurrent use.
type idxDataset struct {
	images, labels *idxFile // labels may be nil
	n              int64
	rows, cols     int
	chunks         []Chunk
}

// idxFile is one opened IDX file: its header and where its body lies.
type idxFile struct {
	path string
	f    *os.File // the file, or its decompressed temporary copy
	dims []int
	body int64 // offset of the first item
	tmp  string
}

// OpenIDX opens an IDX images file (magic 0x00000803: n × rows × cols
// unsigned bytes) and, when labels is not "", its labels file (magic
// 0x00000801: n unsigned bytes). Either may be gzipped. A wrong magic
// number, a wrong dimension count, a body shorter or longer than the header
// says, a label count unlike the image count, an empty file and images over
// maxPixels (0: DefaultMaxPixels) are each one error naming the file.
func OpenIDX(images, labels string, maxPixels int) (_ Dataset, err error) {
	if maxPixels <= 0 {
		maxPixels = DefaultMaxPixels
	}
	d := &idxDataset{}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if d.images, err = openIDXFile(images, 3, "images"); err != nil {
		return nil, err
	}
	n, rows, cols := d.images.dims[0], d.images.dims[1], d.images.dims[2]
	if n == 0 {
		return nil, fmt.Errorf("sources: %s: empty dataset: the IDX header says 0 images", images)
	}
	if rows == 0 || cols == 0 {
		return nil, fmt.Errorf("sources: %s: images are %d×%d: zero-size", images, rows, cols)
	}
	if int64(rows)*int64(cols) > int64(maxPixels) {
		return nil, fmt.Errorf("sources: %s: images are %d×%d, over the limit of %d pixels (max_pixels)", images, rows, cols, maxPixels)
	}
	d.n, d.rows, d.cols = int64(n), rows, cols
	if labels != "" {
		if d.labels, err = openIDXFile(labels, 1, "labels"); err != nil {
			return nil, err
		}
		if m := d.labels.dims[0]; m != n {
			return nil, fmt.Errorf("sources: %s: %d labels, but %s holds %d images", labels, m, images, n)
		}
	}
	per := max(1, int64(idxChunkBytes/(rows*cols)))
	d.chunks = splitRows(0, d.n, per, func(_ int, first int64) string {
		return fmt.Sprintf("%s images %d-%d", images, first, min(first+per, d.n)-1)
	})
	return d, nil
}

// openIDXFile opens path and checks its header and length against want
// dimensions; what names the file's role in errors ("images", "labels").
func openIDXFile(path string, want int, what string) (_ *idxFile, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("sources: %w", err)
	}
	x := &idxFile{path: path, f: f}
	defer func() {
		if err != nil {
			x.close()
		}
	}()
	var magic [2]byte
	if _, err := f.ReadAt(magic[:], 0); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		if err := x.gunzip(want); err != nil {
			return nil, err
		}
	}
	st, err := x.f.Stat()
	if err != nil {
		return nil, fmt.Errorf("sources: %w", err)
	}
	dims, size, err := readIDXHeader(io.NewSectionReader(x.f, 0, st.Size()), want, what)
	if err != nil {
		return nil, fmt.Errorf("sources: %s: %w", path, err)
	}
	x.dims, x.body = dims, int64(4+4*len(dims))
	if have := st.Size() - x.body; have != size {
		if have < size {
			return nil, fmt.Errorf("sources: %s: short body: the header says %s, %d bytes, but the file holds %d", path, idxShape(dims), size, have)
		}
		return nil, fmt.Errorf("sources: %s: trailing data after the %s bytes the header announces", path, idxShape(dims))
	}
	return x, nil
}

// readIDXHeader reads the magic number and dimensions; size is the body's
// length in bytes that they imply.
func readIDXHeader(r io.Reader, want int, what string) (dims []int, size int64, err error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, 0, fmt.Errorf("not an IDX file: too short for a header (%v)", err)
	}
	magic := binary.BigEndian.Uint32(hdr[:])
	if hdr[0] != 0 || hdr[1] != 0 {
		return nil, 0, fmt.Errorf("wrong magic number 0x%08x: not an IDX file (want 0x%08x for %s)", magic, 0x800|want, what)
	}
	if hdr[2] != 0x08 {
		return nil, 0, fmt.Errorf("magic number 0x%08x: data type 0x%02x not supported (want 0x08, unsigned bytes)", magic, hdr[2])
	}
	if int(hdr[3]) != want {
		return nil, 0, fmt.Errorf("magic number 0x%08x: %d dimensions, want %d for %s", magic, hdr[3], want, what)
	}
	raw := make([]byte, 4*want)
	if _, err := io.ReadFull(r, raw); err != nil {
		return nil, 0, fmt.Errorf("short header: %d dimensions announced (%v)", want, err)
	}
	size = 1
	for i := range want {
		v := binary.BigEndian.Uint32(raw[4*i:])
		dims = append(dims, int(v))
		hi, lo := bits.Mul64(uint64(size), uint64(v))
		if hi != 0 || lo > math.MaxInt64 {
			return nil, 0, fmt.Errorf("header says %s: too large", idxShape(dims))
		}
		size = int64(lo)
	}
	return dims, size, nil
}

func idxShape(dims []int) string {
	s := ""
	for i, d := range dims {
		if i > 0 {
			s += "×"
		}
		s += strconv.Itoa(d)
	}
	return s
}

// gunzip replaces x.f by an anonymous temporary file holding the
// decompressed content. It writes no more than the header announces (plus
// one byte, to detect trailing data), so a gzip bomb costs no more disk
// than a plain file of that size.
func (x *idxFile) gunzip(want int) error {
	gz := x.f
	defer gz.Close()
	zr, err := gzip.NewReader(io.NewSectionReader(gz, 0, math.MaxInt64))
	if err != nil {
		return fmt.Errorf("sources: %s: bad gzip data: %w", x.path, err)
	}
	tmp, err := os.CreateTemp("", "contrastream-idx-*")
	if err != nil {
		return fmt.Errorf("sources: %s: decompressing: %w", x.path, err)
	}
	// Unlink at once where the system allows it: the file then disappears
	// when closed, even if the process dies.
	if os.Remove(tmp.Name()) != nil {
		x.tmp = tmp.Name()
	}
	x.f = tmp
	// Copy the header, parse it, then copy the body it announces.
	hlen := int64(4 + 4*want)
	if _, err := io.CopyN(tmp, zr, hlen); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("sources: %s: bad gzip data: %w", x.path, err)
	}
	_, size, err := readIDXHeader(io.NewSectionReader(tmp, 0, hlen), want, "")
	if err != nil {
		// Let the caller report the header problem with the right wording.
		return nil
	}
	if _, err := io.CopyN(tmp, zr, size+1); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("sources: %s: bad gzip data: %w", x.path, err)
	}
	return nil
}

func (x *idxFile) close() error {
	if x == nil || x.f == nil {
		return nil
	}
	err := x.f.Close()
	x.f = nil
	if x.tmp != "" {
		os.Remove(x.tmp)
	}
	return err
}

func (d *idxDataset) Name() string    { return filepath.Base(d.images.path) }
func (d *idxDataset) Len() int64      { return d.n }
func (d *idxDataset) Labeled() bool   { return d.labels != nil }
func (d *idxDataset) Chunks() []Chunk { return d.chunks }

// Close closes the files, and removes a decompressed copy.
func (d *idxDataset) Close() error {
	return errors.Join(d.images.close(), d.labels.close())
}

// ReadChunk reads a run of images as *image.Gray sharing one new buffer.
func (d *idxDataset) ReadChunk(ctx context.Context, i int) ([]pipeline.Sample, error) {
	if err := checkChunkIndex(d.images.path, i, len(d.chunks)); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ch := d.chunks[i]
	px := int64(d.rows * d.cols)
	// Bounded, though sized from the header: Open checked that the file
	// holds the bytes the header announces, px is within max_pixels, and
	// a chunk holds about idxChunkBytes of pixels (one image if larger).
	pix := make([]byte, ch.Len*px)
	if _, err := d.images.f.ReadAt(pix, d.images.body+ch.First*px); err != nil {
		return nil, fmt.Errorf("sources: %s: %w", ch.Origin, err)
	}
	var labs []byte
	if d.labels != nil {
		labs = make([]byte, ch.Len)
		if _, err := d.labels.f.ReadAt(labs, d.labels.body+ch.First); err != nil {
			return nil, fmt.Errorf("sources: %s: labels %d-%d: %w", d.labels.path, ch.First, ch.First+ch.Len-1, err)
		}
	}
	out := make([]pipeline.Sample, ch.Len)
	for k := range out {
		idx := ch.First + int64(k)
		p := pix[int64(k)*px : int64(k+1)*px : int64(k+1)*px]
		out[k] = pipeline.Sample{
			Index:  idx,
			Label:  pipeline.NoLabel,
			Image:  &image.Gray{Pix: p, Stride: d.cols, Rect: image.Rect(0, 0, d.cols, d.rows)},
			Origin: d.images.path + " image " + strconv.FormatInt(idx, 10),
		}
		if labs != nil {
			out[k].Label = int64(labs[k])
		}
	}
	return out, nil
}
