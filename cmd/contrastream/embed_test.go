package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/contrastream/contrastream/sinks"
)

// TestEmbedNeighborsReport trains the tiny moco flow for 2 steps, exports
// its embeddings, searches them and writes the run's report, as a user
// would.
func TestEmbedNeighborsReport(t *testing.T) {
	dir := t.TempDir()
	run := filepath.Join(dir, "run")
	ck := filepath.Join(run, "checkpoint")
	if code, _, stderr := cli(t, append([]string{"train", "-q", "--out", run, "--max-steps", "2"}, tinyMoCo...)...); code != 0 {
		t.Fatalf("train: %s", stderr)
	}

	emb := filepath.Join(dir, "test.parquet")
	code, stdout, stderr := cli(t, "embed", "-q", "--checkpoint", ck, "--data", "builtin:test", "--out", emb)
	if code != 0 || !strings.Contains(stdout, "2,000 rows") || !strings.Contains(stdout, "raw features") {
		t.Fatalf("embed: code %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	code, stdout, stderr = cli(t, "neighbors", "--embeddings", emb, "--index", "5", "--k", "3")
	if code != 0 || !strings.Contains(stdout, "query index 5, label") || strings.Count(stdout, "\n") != 5 {
		t.Fatalf("neighbors --index: code %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	if strings.Contains(stdout, "\n1  5 ") {
		t.Errorf("the query is its own neighbour:\n%s", stdout)
	}

	// A query file: every row's neighbours.
	q := filepath.Join(dir, "q.parquet")
	e, err := sinks.ReadEmbeddings(emb)
	if err != nil {
		t.Fatal(err)
	}
	w, err := sinks.CreateEmbeddings(q, sinks.EmbeddingWriterOptions{Info: e.Info})
	if err != nil {
		t.Fatal(err)
	}
	if e.D != 128 {
		t.Fatalf("the tiny encoder's features have %d values; the test assumes 128", e.D)
	}
	w.Write(0, e.Label[7], "", e.Vector(7))
	w.Write(1, -1, "x.png", e.Vector(9))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = cli(t, "neighbors", "--embeddings", emb, "--query", q, "--k", "2")
	if code != 0 || strings.Count(stdout, "query index") != 2 || !strings.Contains(stdout, "path x.png") || !strings.Contains(stdout, "1     7 ") || stderr != "" {
		t.Fatalf("neighbors --query: code %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}

	// Bad input: a clear error that names the file, never a panic.
	small := filepath.Join(dir, "small.parquet")
	w, _ = sinks.CreateEmbeddings(small, sinks.EmbeddingWriterOptions{Info: sinks.EmbeddingInfo{Dim: 3}})
	w.Write(0, 0, "", []float32{1, 2, 3})
	w.Close()
	proj := filepath.Join(dir, "proj.parquet")
	if code, _, stderr := cli(t, "embed", "-q", "--projection", "--checkpoint", ck, "--data", "builtin:test", "--out", proj); code != 0 {
		t.Fatalf("embed --projection: %s", stderr)
	}
	notParquet := filepath.Join(dir, "notes.parquet")
	os.WriteFile(notParquet, []byte("hello"), 0o644)
	for _, tc := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"--embeddings", emb, "--query", small}, 1, []string{small, `column "embedding"`, "3 values", "128"}},
		{[]string{"--embeddings", emb, "--query", proj}, 1, []string{proj, "projection", "features", "not comparable"}},
		{[]string{"--embeddings", notParquet, "--index", "0"}, 1, []string{notParquet, "not a readable Parquet file"}},
		{[]string{"--embeddings", emb, "--index", "99999"}, 1, []string{emb, "no row has index 99999"}},
		{[]string{"--embeddings", emb}, 2, []string{"--index I or --query FILE"}},
		{[]string{"--embeddings", emb, "--index", "1", "--k", "0"}, 2, []string{"--k 0"}},
	} {
		code, _, stderr := cli(t, append([]string{"neighbors"}, tc.args...)...)
		if code != tc.code {
			t.Errorf("neighbors %v: code %d, want %d (%s)", tc.args, code, tc.code, stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("neighbors %v: stderr %q lacks %q", tc.args, stderr, w)
			}
		}
	}
	if code, _, stderr := cli(t, "embed", "--checkpoint", ck); code != 2 || !strings.Contains(stderr, "--out") {
		t.Errorf("embed without --out: code %d, %s", code, stderr)
	}

	code, stdout, stderr = cli(t, "report", "-q", "--train", "builtin:train", "--max-train", "200", "--max-test", "100", run)
	if code != 0 || !strings.Contains(stdout, filepath.Join(run, "report", "report.html")) || !strings.Contains(stdout, "kNN top-1") {
		t.Fatalf("report: code %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	if code, _, stderr := cli(t, "report", "-q", dir); code != 1 || !strings.Contains(stderr, "no checkpoint") {
		t.Errorf("report of a folder without a run: code %d, %s", code, stderr)
	}
}
