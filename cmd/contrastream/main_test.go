package main

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cli runs the command line as main does and returns the exit code and
// both outputs.
func cli(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestHelp(t *testing.T) {
	if code, _, stderr := cli(t); code != 2 || !strings.Contains(stderr, "Commands:") {
		t.Errorf("no arguments: code %d, stderr %q", code, stderr)
	}
	if code, _, stderr := cli(t, "bogus"); code != 2 || !strings.Contains(stderr, `unknown command "bogus"`) {
		t.Errorf("unknown command: code %d, stderr %q", code, stderr)
	}
	for _, c := range commands() {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := cli(t, c.name, "-h")
			if code != 0 || !strings.Contains(stderr, "Usage: contrastream "+c.name) {
				t.Errorf("%s -h: code %d, stderr %q", c.name, code, stderr)
			}
			code, _, stderr = cli(t, c.name, "--no-such-flag")
			if code != 2 || !strings.Contains(stderr, "no-such-flag") {
				t.Errorf("%s --no-such-flag: code %d, stderr %q", c.name, code, stderr)
			}
		})
	}
}

func TestFlows(t *testing.T) {
	code, stdout, _ := cli(t, "flows")
	if code != 0 || !strings.Contains(stdout, "data") {
		t.Errorf("flows: code %d, %q", code, stdout)
	}
	code, stdout, _ = cli(t, "flows", "data")
	if code != 0 || !strings.Contains(stdout, "kind: collate") {
		t.Errorf("flows data: code %d, %q", code, stdout)
	}
	code, stdout, _ = cli(t, "flows", "-kinds")
	if code != 0 || !strings.Contains(stdout, "augment") || !strings.Contains(stdout, "sample → pair") {
		t.Errorf("flows -kinds: code %d, %q", code, stdout)
	}
}

func TestTrainRunsTheDataFlow(t *testing.T) {
	code, stdout, stderr := cli(t, "train", "-q", "--flow", "data", "--data", "builtin:test", "--set", "epochs=2", "--set", "stages.collate.batch_size=100")
	if code != 0 {
		t.Fatalf("code %d: %s", code, stderr)
	}
	for _, want := range []string{"2 epoch(s) of 2,000 samples", "samples/s", "augment", "collate", "bottleneck"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	// A bad override stops before anything runs, naming the field.
	code, _, stderr = cli(t, "train", "-q", "--set", "stages.collate.batch_sise=3")
	if code != 1 || !strings.Contains(stderr, "batch_sise") {
		t.Errorf("bad --set: code %d, stderr %q", code, stderr)
	}
}

func TestIngestInspectPreview(t *testing.T) {
	dir := t.TempDir()
	// A folder of two classes with one broken file.
	src := filepath.Join(dir, "pics")
	for _, class := range []string{"a", "b"} {
		os.MkdirAll(filepath.Join(src, class), 0o755)
	}
	var pngBytes bytes.Buffer
	code, _, stderr := cli(t, "preview", "--data", "builtin:test", "--n", "2", "--out", filepath.Join(dir, "p.png"))
	if code != 0 {
		t.Fatalf("preview: code %d: %s", code, stderr)
	}
	f, err := os.Open(filepath.Join(dir, "p.png"))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil || img.Bounds().Dx() != 4+3*(96+4) || img.Bounds().Dy() != 16+4+2*(96+4) {
		t.Fatalf("preview PNG: %v, %v", img.Bounds(), err)
	}
	if err := png.Encode(&pngBytes, img); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"a/1.png", "a/2.png", "b/1.png"} {
		os.WriteFile(filepath.Join(src, p), pngBytes.Bytes(), 0o644)
	}
	os.WriteFile(filepath.Join(src, "b/broken.png"), []byte("\x89PNG but no"), 0o644)

	out := filepath.Join(dir, "pics.parquet")
	code, _, stderr = cli(t, "ingest", "-q", "--out", out, src)
	if code != 1 || !strings.Contains(stderr, "broken.png") {
		t.Errorf("ingest with a broken file: code %d, stderr %q", code, stderr)
	}
	code, stdout, stderr := cli(t, "ingest", "-q", "--max-bad", "1", "--out", out, src)
	if code != 0 || !strings.Contains(stdout, "3 rows") || !strings.Contains(stdout, "1 bad samples skipped") {
		t.Fatalf("ingest: code %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, stderr = cli(t, "inspect", "-q", out)
	if code != 0 {
		t.Fatalf("inspect: code %d: %s", code, stderr)
	}
	for _, want := range []string{"rows     3", "png: 3", "304×220×3: 3", "labels   2", "bad      0"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, stdout)
		}
	}
	code, _, stderr = cli(t, "inspect", "-q", filepath.Join(dir, "p.png"))
	if code != 1 || !strings.Contains(stderr, "p.png") {
		t.Errorf("inspect of a PNG: code %d, stderr %q", code, stderr)
	}
	code, _, stderr = cli(t, "ingest", "-q", src)
	if code != 2 || !strings.Contains(stderr, "--out") {
		t.Errorf("ingest without --out: code %d, stderr %q", code, stderr)
	}
}
