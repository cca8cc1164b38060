package main

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/contrastream/contrastream/sinks"
)

// rawControls reports the first character of s that a terminal would act
// on: ESC, BEL, CR, C1 controls, bidi overrides.
func rawControls(s string) (rune, bool) {
	for _, r := range s {
		if r == 0x1b || r == 0x07 || r == '\r' || (r >= 0x80 && r < 0xa0) || r == '\u202e' || r == '\u2066' {
			return r, true
		}
	}
	return 0, false
}

// TestTerminalEscapes gives inspect, ingest and neighbors class names and
// paths with terminal escape sequences and a bidi override: each is
// printed escaped, and ordinary names (spaces, accents) as they are.
func TestTerminalEscapes(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "pics")
	// Sorted, the classes are labels 0-3.
	classes := []string{"Ankle boot", "Bücher", "cat\u202egpj.exe", "evil\x1b[31mred\x1b]0;pwned\x07"}
	escaped := []string{"Ankle boot", "Bücher", `cat\u202egpj.exe`, `evil\x1b[31mred\x1b]0;pwned\a`}
	var pngBytes bytes.Buffer
	if err := png.Encode(&pngBytes, image.NewGray(image.Rect(0, 0, 8, 8))); err != nil {
		t.Fatal(err)
	}
	for _, c := range classes {
		if err := os.MkdirAll(filepath.Join(src, c), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, c, "1.png"), pngBytes.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	badName := "x\x1b[2J\r.png"
	os.WriteFile(filepath.Join(src, classes[0], badName), []byte("not a png"), 0o644)
	badEscaped := `x\x1b[2J\r.png`

	check := func(what, out string, want ...string) {
		t.Helper()
		if r, ok := rawControls(out); ok {
			t.Errorf("%s prints %U raw:\n%q", what, r, out)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s output lacks %q:\n%s", what, w, out)
			}
		}
	}

	// inspect of the folder: class names and the bad file's origin.
	code, stdout, stderr := cli(t, "inspect", "-q", src)
	if code != 0 {
		t.Fatalf("inspect: code %d: %s", code, stderr)
	}
	check("inspect", stdout, "   0 Ankle boot", "   1 Bücher", "   2 "+escaped[2], "   3 "+escaped[3], badEscaped, "bad      1")

	// ingest stops at the bad file, naming it; then, allowed one, writes
	// Parquet whose class names inspect prints escaped too.
	out := filepath.Join(dir, "pics.parquet")
	code, _, stderr = cli(t, "ingest", "-q", "--out", out, src)
	if code != 1 {
		t.Fatalf("ingest with a bad file: code %d: %s", code, stderr)
	}
	check("ingest's error", stderr, badEscaped)
	if code, _, stderr := cli(t, "ingest", "-q", "--max-bad", "1", "--out", out, src); code != 0 {
		t.Fatalf("ingest: code %d: %s", code, stderr)
	}
	code, stdout, stderr = cli(t, "inspect", "-q", out)
	if code != 0 {
		t.Fatalf("inspect of the Parquet file: code %d: %s", code, stderr)
	}
	check("inspect of Parquet", stdout, "   0 Ankle boot", "   1 Bücher", "   2 "+escaped[2], "   3 "+escaped[3])

	// neighbors: class names (spaces made underscores) and paths.
	emb := filepath.Join(dir, "emb.parquet")
	w, err := sinks.CreateEmbeddings(emb, sinks.EmbeddingWriterOptions{Info: sinks.EmbeddingInfo{Dim: 2, ClassNames: classes}})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(0, 3, "evil/\x1b[2J.png", []float32{1, 0})
	w.Write(1, 2, "cat\u202egpj.png", []float32{1, 0.1})
	w.Write(2, 0, "boot.png", []float32{1, 0.2})
	w.Write(3, 1, "", []float32{0, 1})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = cli(t, "neighbors", "--embeddings", emb, "--index", "0", "--k", "3")
	if code != 0 {
		t.Fatalf("neighbors: code %d: %s", code, stderr)
	}
	check("neighbors", stdout,
		"query index 0, label 3 "+escaped[3]+", path evil/\\x1b[2J.png\n",
		"1     1      2 "+escaped[2]+"  ", "  cat\\u202egpj.png\n",
		"2     2      0 Ankle_boot", "  boot.png\n",
		"3     3      1 Bücher", "  -\n")
}

// TestTrainEscapesSkips runs the data flow over a folder with a bad file
// whose name holds escape sequences: the skip it prints is escaped.
func TestTrainEscapesSkips(t *testing.T) {
	src := filepath.Join(t.TempDir(), "pics")
	var pngBytes bytes.Buffer
	if err := png.Encode(&pngBytes, image.NewGray(image.Rect(0, 0, 8, 8))); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(src, "a\x1b[31m"), 0o755)
	for _, f := range []string{"1.png", "2.png", "3.png"} {
		os.WriteFile(filepath.Join(src, "a\x1b[31m", f), pngBytes.Bytes(), 0o644)
	}
	os.WriteFile(filepath.Join(src, "a\x1b[31m", "x\u202e\x1b]0;t\x07.png"), []byte("not a png"), 0o644)
	code, stdout, stderr := cli(t, "train", "-q", "--flow", "data", "--data", src, "--set", "stages.collate.batch_size=1")
	if code != 0 {
		t.Fatalf("code %d: %s", code, stderr)
	}
	if r, ok := rawControls(stdout); ok {
		t.Errorf("train prints %U raw:\n%q", r, stdout)
	}
	want := `a\x1b[31m/x\u202e\x1b]0;t\a.png: not a PNG or JPEG image`
	if !strings.Contains(stdout, "1 bad samples skipped") || !strings.Contains(stdout, want) {
		t.Errorf("output lacks the skip %q:\n%s", want, stdout)
	}
}
