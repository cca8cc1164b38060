package sources

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/contrastream/contrastream/pipeline"
)

// FormatFolder is the image folder format: a directory of one sub-folder
// per class, or of unlabeled images. Detection takes every directory that
// no format before it (parquet, arrow) claims for one.
const FormatFolder = "folder"

func init() {
	RegisterFormat(Format{
		Name:      FormatFolder,
		Order:     30,
		DetectDir: func(string) bool { return true },
		Open: func(c Config, paths []string) (Dataset, error) {
			if len(paths) != 1 {
				return nil, fmt.Errorf("sources: path: a folder dataset takes one folder, got %d paths", len(paths))
			}
			return openFolder(paths[0], c.maxPixels())
		},
	})
}

// folderChunk is the number of files per chunk of an image folder: small,
// so that shuffling mixes many places of a folder sorted by class.
const folderChunk = 64

// imageExts are the file name extensions of an image folder's images
// (compared without regard to case). Other files are ignored.
var imageExts = []string{".png", ".jpg", ".jpeg"}

// folderDataset is a folder of image files: root/<class>/…/*.png|jpg|jpeg,
// one sub-folder per class, or a flat folder of unlabeled images. Its file
// list is made at Open; the files are read in ReadChunk, not decoded.
type folderDataset struct {
	root      string
	files     []string // paths, in Index order
	labels    []int64  // per file; nil when unlabeled
	classes   []string
	chunks    []Chunk
	maxPixels int   // the pixel limit maxBytes derives from
	maxBytes  int64 // files over it are not read: see maxImageBytes
}

// maxImageBytes is the largest image file an image folder reads: 16 bytes
// per pixel of maxPixels, plus 1 MiB. An image within the pixel limit fits:
// a PNG stores at most 8 bytes per pixel (16-bit RGBA, stored without
// compression) plus a filter byte per row and the zlib framing; a JPEG's
// worst case, every DCT coefficient coded at full length (27 bits), is
// about 3.4 bytes per colour component, 13.5 per pixel for CMYK. The 1 MiB is for metadata
// (EXIF, ICC profiles, text chunks). With DefaultMaxPixels it is 1 GiB + 1
// MiB. A larger file is not read: Decode would refuse its image anyway,
// after a read of gigabytes.
func maxImageBytes(maxPixels int) int64 {
	return 16*int64(maxPixels) + 1<<20
}

// OpenFolder opens an image folder. With sub-folders, each (not hidden)
// sub-folder is a class: classes sorted by name get the labels 0..n-1, and
// a class's images are all the image files under its folder, at any depth,
// in sorted order. Without sub-folders, the folder's own images are the
// unlabeled dataset. Images beside class folders, a class without images,
// and a folder without images are errors. Hidden files and folders (".x")
// are ignored, as are files that are not .png, .jpg or .jpeg.
//
// An image file larger than any image of DefaultMaxPixels pixels can be
// (16 bytes per pixel plus 1 MiB; Open applies Config.MaxPixels instead)
// is not read: its sample's Image is a placeholder for which Decode
// returns a *pipeline.SkipError saying so, and which is an empty image to
// anything else.
func OpenFolder(root string) (Dataset, error) {
	return openFolder(root, DefaultMaxPixels)
}

func openFolder(root string, maxPixels int) (Dataset, error) {
	if maxPixels <= 0 {
		maxPixels = DefaultMaxPixels
	}
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("sources: %w", err)
	}
	d := &folderDataset{root: root, maxPixels: maxPixels, maxBytes: maxImageBytes(maxPixels)}
	var loose []string
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		isDir := e.IsDir()
		if e.Type()&fs.ModeSymlink != 0 {
			if st, err := os.Stat(filepath.Join(root, name)); err == nil {
				isDir = st.IsDir()
			}
		}
		switch {
		case isDir:
			d.classes = append(d.classes, name)
		case isImageName(name):
			loose = append(loose, filepath.Join(root, name))
		}
	}
	if len(d.classes) == 0 {
		if len(loose) == 0 {
			return nil, fmt.Errorf("sources: %s: empty dataset: no images (.png, .jpg, .jpeg) and no class folders", root)
		}
		slices.Sort(loose)
		d.files = loose
	} else {
		if len(loose) > 0 {
			return nil, fmt.Errorf("sources: %s: images (%s) beside class folders; move them into a class folder", root, loose[0])
		}
		slices.Sort(d.classes)
		for label, class := range d.classes {
			files, err := imagesUnder(filepath.Join(root, class))
			if err != nil {
				return nil, err
			}
			if len(files) == 0 {
				return nil, fmt.Errorf("sources: %s: class folder %q holds no images (.png, .jpg, .jpeg)", root, class)
			}
			d.files = append(d.files, files...)
			for range files {
				d.labels = append(d.labels, int64(label))
			}
		}
	}
	d.chunks = splitRows(0, int64(len(d.files)), folderChunk, func(_ int, first int64) string {
		return fmt.Sprintf("%s files %d-%d", root, first, min(first+folderChunk, int64(len(d.files)))-1)
	})
	return d, nil
}

func isImageName(name string) bool {
	return slices.Contains(imageExts, strings.ToLower(filepath.Ext(name)))
}

// imagesUnder lists the image files under dir, at any depth, sorted. dir
// itself may be a symbolic link; links below it are not followed.
func imagesUnder(dir string) ([]string, error) {
	var out []string
	// A trailing separator makes WalkDir follow dir when it is a link; the
	// paths it passes on are clean.
	root := dir + string(filepath.Separator)
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != root && strings.HasPrefix(e.Name(), ".") {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !e.IsDir() && isImageName(e.Name()) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sources: %w", err)
	}
	slices.Sort(out)
	return out, nil
}

func (d *folderDataset) Name() string         { return filepath.Base(filepath.Clean(d.root)) }
func (d *folderDataset) Len() int64           { return int64(len(d.files)) }
func (d *folderDataset) Labeled() bool        { return d.labels != nil }
func (d *folderDataset) Chunks() []Chunk      { return d.chunks }
func (d *folderDataset) Close() error         { return nil }
func (d *folderDataset) ClassNames() []string { return d.classes }

// ReadChunk reads the chunk's files. A file that cannot be read is an
// error (a structural problem); its content is not looked at. A file over
// the byte limit is not read: its sample carries an unreadImage, which
// Decode reports as a skip.
func (d *folderDataset) ReadChunk(ctx context.Context, i int) ([]pipeline.Sample, error) {
	if err := checkChunkIndex(d.root, i, len(d.chunks)); err != nil {
		return nil, err
	}
	ch := d.chunks[i]
	out := make([]pipeline.Sample, ch.Len)
	for k := range out {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		idx := ch.First + int64(k)
		s := pipeline.Sample{Index: idx, Label: pipeline.NoLabel, Origin: d.files[idx], Path: d.files[idx]}
		b, size, err := readLimited(d.files[idx], d.maxBytes)
		switch {
		case errors.Is(err, errTooLarge):
			s.Image = &unreadImage{reason: fmt.Errorf("file of %d bytes not read: over the limit of %d bytes for an image of at most %d pixels (max_pixels; 16 bytes per pixel + 1 MiB)", size, d.maxBytes, d.maxPixels)}
		case err != nil:
			return nil, fmt.Errorf("sources: %w", err)
		case len(b) > 0:
			s.Encoded = b
		}
		if d.labels != nil {
			s.Label = d.labels[idx]
		}
		out[k] = s
	}
	return out, nil
}

// errTooLarge is readLimited's error for a file over its limit.
var errTooLarge = errors.New("file too large")

// readLimited reads the file at path, or returns errTooLarge without
// reading it when it is over limit bytes: by its size, or, if it grows
// while being read, by what was read. size is the file's size, or what was
// read of it when it grew.
func readLimited(path string, limit int64) (b []byte, size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	if size = st.Size(); size > limit {
		return nil, size, errTooLarge
	}
	// As os.ReadFile, with one byte of room to see the end without
	// growing, and no more than limit+1 bytes read.
	r := io.LimitReader(f, limit+1)
	b = make([]byte, 0, size+1)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if int64(len(b)) > limit {
			return nil, int64(len(b)), errTooLarge
		}
		if err == io.EOF {
			return b, int64(len(b)), nil
		}
		if err != nil {
			return nil, 0, err
		}
	}
}
