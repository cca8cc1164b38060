package sources_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/contrastream/contrastream/sources"
)

// TestFormatNames checks that the built-in formats come first, in the
// order of detection and of messages.
func TestFormatNames(t *testing.T) {
	got := sources.FormatNames()
	if want := []string{"parquet", "arrow", "folder", "idx"}; len(got) < 4 || !slices.Equal(got[:4], want) {
		t.Errorf("FormatNames() = %q, want %q first", got, want)
	}
	err := sources.Config{Path: "x", Format: "csv"}.Validate()
	if err == nil || !strings.Contains(err.Error(), `format: "csv" is not one of parquet, arrow, folder, idx, `) {
		t.Errorf("unknown format: %v", err)
	}
}

// TestDetectFormatOrder checks detection's order: a file's first bytes
// before its name, and for a folder, Parquet files before Arrow files
// before an image folder.
func TestDetectFormatOrder(t *testing.T) {
	cp := func(t *testing.T, src, dst string) {
		t.Helper()
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	// An Arrow file named .parquet is Arrow: the first bytes decide.
	misnamed := filepath.Join(dir, "misnamed.parquet")
	cp(t, "testdata/hf.arrow", misnamed)
	both := filepath.Join(dir, "both")
	if err := os.Mkdir(both, 0o755); err != nil {
		t.Fatal(err)
	}
	cp(t, "testdata/hf.parquet", filepath.Join(both, "a.parquet"))
	cp(t, "testdata/hf.arrow", filepath.Join(both, "b.arrow"))
	arrows := filepath.Join(dir, "arrows")
	if err := os.Mkdir(arrows, 0o755); err != nil {
		t.Fatal(err)
	}
	cp(t, "testdata/hf.arrow", filepath.Join(arrows, "b.arrow"))
	cp(t, "testdata/folder/circle/b.png", filepath.Join(arrows, "c.png"))
	for _, tt := range []struct {
		path, name string
	}{
		{misnamed, "misnamed.parquet"},
		{both, "a.parquet"}, // Parquet before Arrow: the Arrow file is left out
		{arrows, "b.arrow"}, // Arrow before an image folder
		{"testdata/flat", "flat"},
	} {
		ds, err := sources.Open(sources.Config{Path: tt.path})
		if err != nil {
			t.Errorf("%s: %v", tt.path, err)
			continue
		}
		if ds.Name() != tt.name {
			t.Errorf("%s: opened %q, want %q", tt.path, ds.Name(), tt.name)
		}
		ds.Close()
	}
	// A file whose first bytes no format claims goes by its name.
	junk := filepath.Join(dir, "junk.pq")
	if err := os.WriteFile(junk, []byte("not parquet"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := sources.Open(sources.Config{Path: junk}); err == nil || !strings.Contains(err.Error(), "Parquet") {
		t.Errorf("%s: %v, want a Parquet error", junk, err)
	}
}

// TestRegisterFormatClash checks that RegisterFormat refuses a format
// without a name or an Open, a name taken and an extension taken.
func TestRegisterFormatClash(t *testing.T) {
	open := func(sources.Config, []string) (sources.Dataset, error) { return nil, nil }
	for _, tt := range []struct {
		name string
		f    sources.Format
		want string
	}{
		{"no name", sources.Format{Open: open}, "needs a Name and an Open"},
		{"no open", sources.Format{Name: "x-no-open"}, "needs a Name and an Open"},
		{"name taken", sources.Format{Name: sources.FormatParquet, Open: open}, `format "parquet" registered twice`},
		{"extension taken", sources.Format{Name: "x-pq", Exts: []string{".pq"}, Open: open}, "extension .pq is already format parquet's"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if p := recover(); p == nil || !strings.Contains(p.(string), tt.want) {
					t.Errorf("panic %v, want %q", p, tt.want)
				}
			}()
			sources.RegisterFormat(tt.f)
		})
	}
	if slices.Contains(sources.FormatNames(), "x-pq") {
		t.Error("a refused format was registered")
	}
}
