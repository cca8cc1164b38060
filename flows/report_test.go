package flows_test

import (
	"context"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/contrastream/contrastream/flows"
	"github.com/contrastream/contrastream/sinks"
	"github.com/contrastream/contrastream/sources"
)

// tinyRun trains the tiny moco flow for 3 steps into a run folder.
func tinyRun(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "run")
	if err := prepare(t, "moco", tinySets("moco"), flows.JobOptions{RunDir: dir, MaxSteps: 3}).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	return dir
}

// imageFolder writes a folder of two classes of 3 gray 20×20 images.
func imageFolder(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "pics")
	for c, class := range []string{"dark", "light"} {
		os.MkdirAll(filepath.Join(root, class), 0o755)
		for i := range 3 {
			g := image.NewGray(image.Rect(0, 0, 20, 20))
			for p := range g.Pix {
				g.Pix[p] = uint8(40 + 150*c + 10*i + p%7)
			}
			f, err := os.Create(filepath.Join(root, class, string(rune('a'+i))+".png"))
			if err != nil {
				t.Fatal(err)
			}
			png.Encode(f, g)
			f.Close()
		}
	}
	return root
}

func TestEmbed(t *testing.T) {
	run := tinyRun(t)
	enc, err := flows.LoadEncoder(filepath.Join(run, "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	if enc.Step != 3 || enc.Checkpoint == "" {
		t.Errorf("encoder step %d, checkpoint %q", enc.Step, enc.Checkpoint)
	}
	pics := imageFolder(t)
	for _, proj := range []bool{false, true} {
		out := filepath.Join(t.TempDir(), "emb.parquet")
		var last int64
		r, err := flows.Embed(context.Background(), enc, out, flows.EmbedConfig{Data: sources.Config{Path: pics}, Projection: proj, RowGroupSize: 4,
			Progress: func(done, total int64) { last = done }})
		if err != nil {
			t.Fatal(err)
		}
		e, err := sinks.ReadEmbeddings(out)
		if err != nil {
			t.Fatal(err)
		}
		wantD, wantKind := enc.Weights.Features(), sinks.KindFeatures
		if proj {
			wantD, wantKind = enc.Weights.Out(), sinks.KindProjection
		}
		if r.Rows != 6 || e.N != 6 || e.D != wantD || e.Info.Kind != wantKind || e.Info.Step != 3 || last != 6 {
			t.Fatalf("projection %v: %d rows, read %d×%d %s, progress %d", proj, r.Rows, e.N, e.D, e.Info.Kind, last)
		}
		if !slices.Equal(e.Label, []int64{0, 0, 0, 1, 1, 1}) || !slices.Equal(e.Info.ClassNames, []string{"dark", "light"}) {
			t.Errorf("labels %v, class names %v", e.Label, e.Info.ClassNames)
		}
		for i, p := range e.Path {
			if e.Index[i] != int64(i) || !strings.HasPrefix(p, pics) || !strings.HasSuffix(p, ".png") {
				t.Errorf("row %d: index %d, path %q", i, e.Index[i], p)
			}
		}
	}
	// A dataset of another image size is an error, and leaves no file.
	out := filepath.Join(t.TempDir(), "bad.parquet")
	big := *enc
	big.Augment.Size = 0 // no resize: 28×28 images into a 16×16 encoder
	if _, err := flows.Embed(context.Background(), &big, out, flows.EmbedConfig{Data: sources.Config{Path: flows.BuiltinTest}}); err == nil || !strings.Contains(err.Error(), "encoder takes") {
		t.Errorf("28×28 images into a 16×16 encoder: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 0 {
		t.Errorf("files after a failed embed: %v", ents)
	}
}

func TestReport(t *testing.T) {
	run := tinyRun(t)
	cfg := flows.ReportConfig{Train: sources.Config{Path: flows.BuiltinTrain}, MaxTrain: 300, MaxTest: 200}
	check := func(r flows.ReportResult, want []string) {
		t.Helper()
		html, err := os.ReadFile(r.Page)
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(html), `src="data:image/png;base64,`); n != len(want) {
			t.Errorf("%d images in the page; want %d", n, len(want))
		}
		var names []string
		for _, f := range r.Figures {
			names = append(names, filepath.Base(f))
			fh, err := os.Open(f)
			if err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(fh)
			fh.Close()
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if b := img.Bounds(); b.Dx() < 300 || b.Dy() < 200 || b.Dx() > 2000 || b.Dy() > 2000 {
				t.Errorf("%s is %v", f, b)
			}
		}
		if !slices.Equal(names, want) {
			t.Errorf("figures %v; want %v", names, want)
		}
		if r.Steps != 3 || r.KNN < 0 || r.KNN > 1 {
			t.Errorf("steps %d, kNN %v", r.Steps, r.KNN)
		}
	}
	r, err := flows.Report(context.Background(), run, cfg)
	if err != nil {
		t.Fatal(err)
	}
	check(r, []string{"loss.png", "lr.png", "similarity.png", "alignment_uniformity.png", "throughput.png", "pca.png", "tsne.png", "retrieval.png"})
	if html, _ := os.ReadFile(r.Page); !strings.Contains(string(html), "No kNN monitor in this run") || !strings.Contains(string(html), "Ankle boot") {
		t.Error("the page does not say there was no kNN monitor, or names no class")
	}

	// With a kNN monitor's file, the page has its curve.
	os.WriteFile(filepath.Join(run, flows.EvalFile), []byte(`{"epoch":0,"step":1,"knn_top1":0.31,"k":200,"t":0.1}
{"epoch":1,"step":3,"knn_top1":0.42,"k":200,"t":0.1}
`), 0o644)
	cfg.Out = filepath.Join(t.TempDir(), "elsewhere")
	if r, err = flows.Report(context.Background(), run, cfg); err != nil {
		t.Fatal(err)
	}
	check(r, []string{"loss.png", "lr.png", "similarity.png", "alignment_uniformity.png", "throughput.png", "knn.png", "pca.png", "tsne.png", "retrieval.png"})
	if filepath.Dir(r.Page) != cfg.Out {
		t.Errorf("page at %s", r.Page)
	}

	// Bad run folders.
	if _, err := flows.Report(context.Background(), t.TempDir(), cfg); err == nil || !strings.Contains(err.Error(), "no checkpoint") {
		t.Errorf("an empty folder: %v", err)
	}
	os.WriteFile(filepath.Join(run, flows.EvalFile), []byte(`{"epoch":0,"step":1,"knn_top1":0.31,"k":200,"t":0.1}
{"epoch":1,"st`), 0o644)
	if r, err = flows.Report(context.Background(), run, cfg); err != nil || len(r.Notes) != 1 || !strings.Contains(r.Notes[0], "1 lines of") {
		t.Errorf("half a line in %s: %v, notes %q", flows.EvalFile, err, r.Notes)
	}
}
