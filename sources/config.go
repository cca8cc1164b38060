package sources

import (
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/contrastream/contrastream/pipeline"
)

// DefaultMaxPixels is the pixel limit of Decode and of IDX images when none
// is set: 8192×8192, 64 Mi pixels. An image over it is skipped before it is
// decoded, so a decompression bomb costs nothing. So is an image whose
// decoding would allocate more than DecodedBytesPerPixel bytes a pixel of
// the limit (MaxDecodedBytes: 256 MiB with this default).
const DefaultMaxPixels = 64 << 20

// Config says which dataset to open. Its zero value, with a Path, means the
// defaults: the format detected from the path, the columns "image" and
// "label", DefaultMaxPixels.
type Config struct {
	// Path is a file, a folder or a glob pattern ("data/train-*.parquet").
	Path string `yaml:"path"`
	// Paths lists more files, folders or patterns; Path and Paths add up.
	// Parquet and Arrow datasets may span many files: their rows follow one
	// another with the files in sorted order. Folder and IDX datasets take
	// exactly one path.
	Paths []string `yaml:"paths"`
	// Format is "parquet", "arrow" (IPC file or stream format), "folder"
	// (one sub-folder per class, or a flat folder of unlabeled images),
	// "idx" (MNIST format), another format registered with RegisterFormat,
	// or "" to detect it from the files' first bytes or name, or for a
	// folder, from the files it holds.
	Format string `yaml:"format"`
	// ImageColumn names the image column of a Parquet or Arrow dataset:
	// either the Hugging Face layout struct<bytes: binary, path: string> or a
	// plain binary column of PNG or JPEG bytes. Default "image".
	ImageColumn string `yaml:"image_column"`
	// LabelColumn names the integer label column of a Parquet or Arrow
	// dataset. Default "label", and then a dataset without that column is
	// unlabeled; a LabelColumn that is set must exist.
	LabelColumn string `yaml:"label_column"`
	// Labels is the IDX labels file ("train-labels-idx1-ubyte.gz"); without
	// it an IDX dataset is unlabeled.
	Labels string `yaml:"labels"`
	// MaxPixels is the largest image, in pixels, that Decode accepts (for
	// the callers that pass it on, as inspection and ingestion do) and an
	// IDX file may hold. It also sets Decode's byte limit, 4 bytes a pixel
	// of it (MaxDecodedBytes), which refuses larger 16-bit, interlaced or
	// progressive images. An image folder does not read a file larger than
	// 16 bytes per pixel of it plus 1 MiB (see OpenFolder). Default
	// DefaultMaxPixels.
	MaxPixels int `yaml:"max_pixels"`
}

// Validate checks the fields that can be checked without touching the
// files. Its errors are *pipeline.FieldError naming the field by its YAML
// name, so that a flow spec points at the field's line.
func (c Config) Validate() error {
	if c.Path == "" && len(c.Paths) == 0 {
		return fieldError("path", "no dataset given (set path or paths)")
	}
	for i, p := range c.Paths {
		if p == "" {
			return fieldError(fmt.Sprintf("paths[%d]", i), "empty path")
		}
	}
	var f *Format
	if c.Format != "" {
		var ok bool
		if f, ok = lookupFormat(c.Format); !ok {
			return fieldError("format", "%q is not one of %s (or empty to detect)", c.Format, strings.Join(FormatNames(), ", "))
		}
	}
	if c.MaxPixels < 0 {
		return fieldError("max_pixels", "%d is negative", c.MaxPixels)
	}
	if f == nil {
		return nil
	}
	if c.Labels != "" && !f.LabelsFile {
		return fieldError("labels", "a labels file is for the %s format, not %s (use label_column)", formatsWith(func(f *Format) bool { return f.LabelsFile }), c.Format)
	}
	if !f.Columns {
		if c.ImageColumn != "" {
			return fieldError("image_column", "the %s format has no columns", c.Format)
		}
		if c.LabelColumn != "" {
			return fieldError("label_column", "the %s format has no columns", c.Format)
		}
	}
	if f.Validate != nil {
		return f.Validate(c)
	}
	return nil
}

// fieldError is a validation error of the field whose YAML name is field.
func fieldError(field, format string, args ...any) error {
	return &pipeline.FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// maxPixels is the pixel limit with the default applied.
func (c Config) maxPixels() int {
	if c.MaxPixels == 0 {
		return DefaultMaxPixels
	}
	return c.MaxPixels
}

// Open opens the dataset c describes, after validating c. It reads the
// files' metadata (and for Arrow IPC, each record batch once, since IPC
// files do not record row counts outside the batches) so that a missing
// column, a wrong type or an unreadable file is reported now, naming the
// file and column; no image is decoded. An empty dataset is an error.
func Open(c Config) (Dataset, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	paths, err := expand(c.all())
	if err != nil {
		return nil, err
	}
	format := c.Format
	if format == "" {
		if format, err = detect(paths); err != nil {
			return nil, err
		}
		detected := c
		detected.Format = format
		if err := detected.Validate(); err != nil {
			return nil, fmt.Errorf("%w (detected format %s)", err, format)
		}
	}
	f, ok := lookupFormat(format)
	if !ok { // Validate has checked c.Format, and detect returns registered names
		return nil, fmt.Errorf("sources: no format %q", format)
	}
	return f.Open(c, paths)
}

func (c Config) all() []string {
	var ps []string
	if c.Path != "" {
		ps = append(ps, c.Path)
	}
	return append(ps, c.Paths...)
}

// expand replaces glob patterns by the paths they match and checks that
// each path exists. The result is sorted; a path named twice is an error.
func expand(patterns []string) ([]string, error) {
	var out []string
	for _, p := range patterns {
		if strings.ContainsAny(p, "*?[") {
			m, err := filepath.Glob(p)
			if err != nil {
				return nil, fmt.Errorf("sources: path %q: %w", p, err)
			}
			if len(m) == 0 {
				return nil, fmt.Errorf("sources: path %q: no file matches", p)
			}
			out = append(out, m...)
			continue
		}
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("sources: %w", err)
		}
		out = append(out, p)
	}
	slices.Sort(out)
	for i := 1; i < len(out); i++ {
		if filepath.Clean(out[i]) == filepath.Clean(out[i-1]) {
			return nil, fmt.Errorf("sources: %s: listed twice", out[i])
		}
	}
	return out, nil
}

// detect finds the format of paths: from the first bytes of files, and
// for a folder, from the data files it holds (else it is an image folder).
func detect(paths []string) (string, error) {
	format := ""
	for _, p := range paths {
		f, err := detectOne(p)
		if err != nil {
			return "", err
		}
		if format != "" && f != format {
			return "", fmt.Errorf("sources: %s: format %s differs from the %s of %s", p, f, format, paths[0])
		}
		format = f
	}
	return format, nil
}

// detectOne finds the format of one path: for a directory, the first
// format in Order that claims it; for a file, the first whose Magic
// matches its first bytes, else the first whose Exts has its extension.
func detectOne(p string) (string, error) {
	st, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("sources: %w", err)
	}
	fs := registeredFormats()
	if st.IsDir() {
		for _, f := range fs {
			if f.detectsDir(p) {
				return f.Name, nil
			}
		}
		return "", fmt.Errorf("sources: %s: no format reads this folder; set format", p)
	}
	f, err := os.Open(p)
	if err != nil {
		return "", fmt.Errorf("sources: %w", err)
	}
	defer f.Close()
	head := make([]byte, 8)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	if len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b {
		if _, err := f.Seek(0, io.SeekStart); err == nil {
			if zr, err := gzip.NewReader(f); err == nil {
				head = make([]byte, 4)
				n, _ = io.ReadFull(zr, head)
				head = head[:n]
			}
		}
	}
	for _, f := range fs {
		if f.Magic != nil && f.Magic(head) {
			return f.Name, nil
		}
	}
	ext := strings.ToLower(filepath.Ext(p))
	for _, f := range fs {
		if slices.Contains(f.Exts, ext) {
			return f.Name, nil
		}
	}
	return "", fmt.Errorf("sources: %s: cannot tell its format from its first bytes or its name; set format", p)
}

// filesOf lists the data files of paths, for format whose files have the
// extensions exts: files as they are, folders replaced by their data files
// (not recursively), in sorted order.
func filesOf(paths []string, format string, exts []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("sources: %w", err)
		}
		if !st.IsDir() {
			out = append(out, p)
			continue
		}
		fs, err := dataFiles(p, exts)
		if err != nil {
			return nil, err
		}
		if len(fs) == 0 {
			return nil, fmt.Errorf("sources: %s: no %s files (%s) in this folder", p, format, strings.Join(exts, ", "))
		}
		out = append(out, fs...)
	}
	slices.Sort(out)
	return out, nil
}

// dataFiles lists the files of dir (not hidden, not in sub-directories)
// with one of the extensions exts.
func dataFiles(dir string, exts []string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("sources: %w", err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if slices.Contains(exts, strings.ToLower(filepath.Ext(e.Name()))) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out, nil
}
