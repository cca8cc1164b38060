package sources

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Format is a data format that Open reads: how its files are recognised,
// which of Config's fields it takes, and how a dataset of it is opened.
// Each format registers itself with RegisterFormat from an init function
// in its own file (parquet.go, arrow.go, folder.go, idx.go), so adding a
// format is one new file and its test, and no switch to edit (see
// ExampleRegisterFormat).
type Format struct {
	// Name is the Config.Format value that selects the format: "parquet".
	Name string
	// Order places the format among the others, lowest first: in
	// detection and in the lists of messages. The built-in formats take
	// 10 (parquet), 20 (arrow), 30 (folder) and 40 (idx); ties go by Name.
	// Folder claims every directory, so a format that detects directories
	// needs an Order under 30.
	Order int
	// Magic reports whether a file's first bytes are this format's: at
	// most 8 bytes (fewer for a shorter file), or for a gzipped file the
	// first 4 bytes of its decompressed contents. Detection asks every
	// format's Magic, in Order, before any format's Exts. Nil: never.
	Magic func(head []byte) bool
	// Exts lists the extensions, lowercase with the dot, of the format's
	// data files: detection falls back on them for a file whose first
	// bytes no format claims, and a directory that holds such files (not
	// in sub-directories) is a dataset of them, unless DetectDir is set.
	Exts []string
	// DetectDir, when set, reports whether the directory dir is a dataset
	// of this format, in place of the test on Exts.
	DetectDir func(dir string) bool
	// Columns says that the format takes Config.ImageColumn and
	// LabelColumn; for one that does not, setting them is an error.
	Columns bool
	// LabelsFile says that the format takes a separate labels file
	// (Config.Labels); for one that does not, setting it is an error.
	LabelsFile bool
	// Validate, when set, checks the format's own constraints on c, after
	// the checks that Config.Validate makes for every format. Its error
	// should be a *pipeline.FieldError naming the field.
	Validate func(c Config) error
	// Open opens the dataset c describes, given its paths: c.Path and
	// c.Paths with glob patterns expanded, each of them existing, in
	// sorted order. It is called with a valid c; its errors name the file.
	Open func(c Config, paths []string) (Dataset, error)
}

// detectsDir reports whether the format claims the directory dir.
func (f *Format) detectsDir(dir string) bool {
	if f.DetectDir != nil {
		return f.DetectDir(dir)
	}
	if len(f.Exts) == 0 {
		return false
	}
	fs, _ := dataFiles(dir, f.Exts)
	return len(fs) > 0
}

// formats is the registry of RegisterFormat, in Order.
var formats struct {
	sync.RWMutex
	list []*Format
}

// RegisterFormat makes f known to Open, Config.Validate and detection. It
// panics if f has no Name or no Open, or if its Name, or one of its Exts,
// is already registered: registration happens in init functions, where a
// clash is a programming error. It is safe for concurrent use.
func RegisterFormat(f Format) {
	if f.Name == "" || f.Open == nil {
		panic(fmt.Sprintf("sources: RegisterFormat(%q): a format needs a Name and an Open", f.Name))
	}
	f.Exts = slices.Clone(f.Exts)
	formats.Lock()
	defer formats.Unlock()
	for _, g := range formats.list {
		if g.Name == f.Name {
			panic(fmt.Sprintf("sources: RegisterFormat: format %q registered twice", f.Name))
		}
		for _, e := range f.Exts {
			if slices.Contains(g.Exts, e) {
				panic(fmt.Sprintf("sources: RegisterFormat(%q): extension %s is already format %s's", f.Name, e, g.Name))
			}
		}
	}
	formats.list = append(formats.list, &f)
	slices.SortStableFunc(formats.list, func(a, b *Format) int {
		return cmp.Or(cmp.Compare(a.Order, b.Order), strings.Compare(a.Name, b.Name))
	})
}

// FormatNames lists the registered formats' names, in Order: "parquet",
// "arrow", "folder", "idx" and any registered since.
func FormatNames() []string {
	var ns []string
	for _, f := range registeredFormats() {
		ns = append(ns, f.Name)
	}
	return ns
}

// registeredFormats is a snapshot of the registry, in Order.
func registeredFormats() []*Format {
	formats.RLock()
	defer formats.RUnlock()
	return slices.Clone(formats.list)
}

// lookupFormat returns the registered format called name.
func lookupFormat(name string) (*Format, bool) {
	for _, f := range registeredFormats() {
		if f.Name == name {
			return f, true
		}
	}
	return nil, false
}

// formatsWith lists, joined by " or ", the names of the formats for which
// has is true.
func formatsWith(has func(*Format) bool) string {
	var ns []string
	for _, f := range registeredFormats() {
		if has(f) {
			ns = append(ns, f.Name)
		}
	}
	return strings.Join(ns, " or ")
}
