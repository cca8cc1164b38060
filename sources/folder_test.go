package sources_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sources"
)

// TestFolderFileTooLarge checks that an image file over the folder's byte
// limit (16 bytes per pixel of max_pixels, plus 1 MiB) is not read but
// becomes a sample that Decode skips with the reason. The large files are
// sparse (os.Truncate): they cost no disk, and reading one would cost its
// size in memory.
func TestFolderFileTooLarge(t *testing.T) {
	const maxPixels = 1000
	limit := int64(16*maxPixels + 1<<20)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.png"), testPNG(t, 0), 0o644); err != nil {
		t.Fatal(err)
	}
	sizes := map[string]int64{"b.png": limit, "c.png": limit + 1, "d.png": 8 << 30}
	for name, size := range sizes {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, size); err != nil {
			t.Skip("cannot make a large sparse file:", err)
		}
	}
	for _, tt := range []struct {
		cfg   sources.Config
		limit int64
		want  []string // per file a..d: the skip reason, "" for a good image
	}{
		{sources.Config{Path: dir, MaxPixels: maxPixels}, limit, []string{
			"",
			"b.png: not a PNG or JPEG image", // read: at the limit
			"c.png: file of 1064577 bytes not read: over the limit of 1064576 bytes for an image of at most 1000 pixels",
			"d.png: file of 8589934592 bytes not read: over the limit of 1064576 bytes",
		}},
		// The default limit, 1 GiB + 1 MiB.
		{sources.Config{Path: dir}, 16*sources.DefaultMaxPixels + 1<<20, []string{
			"", "b.png: not a PNG or JPEG image", "c.png: not a PNG or JPEG image",
			"d.png: file of 8589934592 bytes not read: over the limit of 1074790400 bytes for an image of at most 67108864 pixels",
		}},
	} {
		ds, err := sources.Open(tt.cfg)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		err = sources.Each(context.Background(), ds, sources.StreamConfig{}, func(s pipeline.Sample) error {
			_, err := sources.Decode(s, tt.cfg.MaxPixels)
			switch {
			case err == nil:
				got = append(got, "")
			case pipeline.IsSkip(err):
				got = append(got, err.Error())
			default:
				t.Errorf("%s: not a skip: %v", s.Origin, err)
			}
			return nil
		})
		ds.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(tt.want) {
			t.Fatalf("%d samples, want %d", len(got), len(tt.want))
		}
		for i, w := range tt.want {
			if (w == "") != (got[i] == "") || !strings.Contains(got[i], w) {
				t.Errorf("max_pixels %d, sample %d: %q, want %q", tt.cfg.MaxPixels, i, got[i], w)
			}
		}
	}
}
