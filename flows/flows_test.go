package flows_test

import (
	"context"
	"encoding/binary"
	"errors"
	"image"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/contrastream/contrastream/flows"
	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sinks"
	"github.com/contrastream/contrastream/sources"
)

func TestPrebuiltFlowsLoad(t *testing.T) {
	if len(flows.Names()) == 0 {
		t.Fatal("no prebuilt flows")
	}
	for _, name := range flows.Names() {
		t.Run(name, func(t *testing.T) {
			spec, err := flows.Load(name, nil)
			if err != nil {
				t.Fatal(err)
			}
			if spec.Name != name {
				t.Errorf("flow %s calls itself %q", name, spec.Name)
			}
			if _, err := flows.Build(spec, pipeline.Options{}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := "name: mine\nsource: {kind: dataset, path: builtin:test}\nstages:\n  - kind: augment\n  - {kind: collate, batch_size: 64}\nsinks: [{kind: discard}]\n"
	for _, tc := range []struct {
		name, flow string
		sets       []string
		want       []string // all in the error
	}{
		{"unknown prebuilt flow", "nope", nil, []string{`no prebuilt flow "nope"`, "data"}},
		{"missing file", filepath.Join(dir, "absent.yaml"), nil, []string{"absent.yaml"}},
		{"unknown field", write("a.yaml", strings.Replace(good, "batch_size: 64", "batch_sise: 64", 1)), nil,
			[]string{"a.yaml:5", "batch_sise"}},
		{"wrong type", write("b.yaml", strings.Replace(good, "batch_size: 64", "batch_size: many", 1)), nil,
			[]string{"b.yaml:5", "batch_size"}},
		{"out of range", write("c.yaml", good), []string{"stages.collate.batch_size=-1"}, []string{"batch_size"}},
		{"unknown kind", write("d.yaml", strings.Replace(good, "kind: augment", "kind: agument", 1)), nil,
			[]string{"d.yaml:4", "agument"}},
		{"incompatible neighbours", write("e.yaml", strings.Replace(good, "  - kind: augment\n", "", 1)), nil,
			[]string{"collate", "pair", "sample"}},
		{"bad order", write("f.yaml", good), []string{"source.order=random"}, []string{"order", "random"}},
		{"unknown override path", "data", []string{"stages.encode.lr=1"}, []string{"encode"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := flows.Load(tc.flow, tc.sets)
			if err == nil {
				t.Fatalf("no error; spec %+v", spec)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	if _, err := flows.Load(write("g.yaml", good), nil); err != nil {
		t.Errorf("the good spec fails: %v", err)
	}
}

func TestBuildFailsBeforeRunningOnMissingData(t *testing.T) {
	spec, err := flows.Load("data", []string{"source.path=" + filepath.Join(t.TempDir(), "none.parquet")})
	if err != nil {
		t.Fatal(err) // the path is only checked when the flow is built
	}
	if _, err := flows.Build(spec, pipeline.Options{}); err == nil || !strings.Contains(err.Error(), "none.parquet") {
		t.Errorf("Build = %v, want an error naming the missing file", err)
	}
}

func TestBuildTeesSeveralSinks(t *testing.T) {
	spec, err := flows.Load("data", []string{"source.path=builtin:test", "sinks=[{kind: discard, name: a}, {kind: discard, name: b}]"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := flows.Build(spec, pipeline.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	m := f.Metrics()
	if last := m[len(m)-1]; last.Name != "a+b" || last.In != 7 {
		t.Errorf("last stage %s received %d batches, want a+b with 7", last.Name, last.In)
	}
}

// writeIDX writes n 3×2 (width × height) images whose pixels are their index, and labels
// i%2, as IDX files.
func writeIDX(t *testing.T, dir string, n int) (images, labels string) {
	t.Helper()
	img := binary.BigEndian.AppendUint32(nil, 0x00000803)
	img = binary.BigEndian.AppendUint32(img, uint32(n))
	img = binary.BigEndian.AppendUint32(img, 2)
	img = binary.BigEndian.AppendUint32(img, 3)
	lab := binary.BigEndian.AppendUint32(nil, 0x00000801)
	lab = binary.BigEndian.AppendUint32(lab, uint32(n))
	for i := range n {
		for range 6 {
			img = append(img, byte(10*i))
		}
		lab = append(lab, byte(i%2))
	}
	images, labels = filepath.Join(dir, "img-idx3-ubyte"), filepath.Join(dir, "lab-idx1-ubyte")
	if err := os.WriteFile(images, img, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(labels, lab, 0o644); err != nil {
		t.Fatal(err)
	}
	return images, labels
}

func TestIngestIDX(t *testing.T) {
	dir := t.TempDir()
	images, labels := writeIDX(t, dir, 10)
	out := filepath.Join(dir, "out.parquet")
	var calls int
	st, err := flows.Ingest(context.Background(), flows.IngestConfig{
		Source: sources.Config{Path: images, Labels: labels}, Out: out, PerClass: 3, RowGroupSize: 4,
		ClassNames: []string{"even", "odd"}, Progress: func(rows, total int64) { calls++ }})
	if err != nil {
		t.Fatal(err)
	}
	if st.Rows != 6 || st.Skipped != 0 || calls != 6 {
		t.Errorf("stats %+v after %d progress calls; want 6 rows (3 per class)", st, calls)
	}
	ds, err := sources.Open(sources.Config{Path: out})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	if got := sources.ClassNames(ds); len(got) != 2 || got[1] != "odd" {
		t.Errorf("class names read back: %v", got)
	}
	if len(ds.Chunks()) != 2 {
		t.Errorf("%d row groups, want 2 of ≤4 rows", len(ds.Chunks()))
	}
	// The first three of each label in Index order: source samples 0..5.
	var i int
	err = sources.Each(context.Background(), ds, sources.StreamConfig{}, func(s pipeline.Sample) error {
		img, err := sources.Decode(s, 0)
		if err != nil {
			return err
		}
		g := img.(*image.Gray)
		if g.Bounds().Dx() != 3 || g.Bounds().Dy() != 2 || g.Pix[0] != byte(10*i) || s.Label != int64(i%2) {
			t.Errorf("row %d: %v pixel %d label %d", i, g.Bounds(), g.Pix[0], s.Label)
		}
		i++
		return nil
	})
	if err != nil || i != 6 {
		t.Fatalf("read back %d rows: %v", i, err)
	}
}

func TestIngestFolderSkipsBadImages(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "pics")
	for _, class := range []string{"cat", "dog"} {
		if err := os.MkdirAll(filepath.Join(root, class), 0o755); err != nil {
			t.Fatal(err)
		}
		b, err := sinks.EncodePNG(image.NewGray(image.Rect(0, 0, 4, 4)))
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{"a.png", "b.png"} {
			if err := os.WriteFile(filepath.Join(root, class, n), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(root, "dog", "broken.png"), []byte("not a png"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "pics.parquet")
	_, err := flows.Ingest(context.Background(), flows.IngestConfig{Source: sources.Config{Path: root}, Out: out})
	if err == nil || !strings.Contains(err.Error(), "broken.png") {
		t.Fatalf("with no bad samples allowed: %v, want an error naming broken.png", err)
	}
	if _, serr := os.Stat(out); !errors.Is(serr, os.ErrNotExist) {
		t.Errorf("a failed ingest left %s behind (%v)", out, serr)
	}
	st, err := flows.Ingest(context.Background(), flows.IngestConfig{Source: sources.Config{Path: root}, Out: out, MaxBadSamples: 1})
	if err != nil {
		t.Fatal(err)
	}
	if st.Rows != 4 || st.Skipped != 1 || len(st.Classes) != 2 || st.Classes[0] != "cat" {
		t.Errorf("stats %+v; want 4 rows, 1 skipped, classes cat and dog", st)
	}
}

func TestPreview(t *testing.T) {
	spec, err := flows.Load("data", []string{"source.path=builtin:test"})
	if err != nil {
		t.Fatal(err)
	}
	rows, err := flows.Preview(context.Background(), spec, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Fatalf("%d rows", len(rows))
	}
	for _, r := range rows {
		for i, img := range r.Images {
			if img == nil || img.Bounds().Dx() != 28 {
				t.Errorf("sample %d picture %d: %v", r.Index, i, img)
			}
		}
	}
	again, _ := flows.Preview(context.Background(), spec, 3)
	if again[0].Index != rows[0].Index || again[0].Images[1].At(14, 14) != rows[0].Images[1].At(14, 14) {
		t.Error("the preview is not deterministic")
	}
}

func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sets    []string
		want    flows.Plan
		wantErr string
	}{
		{"drop", []string{"epochs=2"}, flows.Plan{EpochLen: 2000, Epochs: 2, Labeled: true, BatchSize: 256, Batches: 7, C: 1, H: 28, W: 28}, ""},
		{"pad", []string{"stages.collate.last=pad"}, flows.Plan{EpochLen: 2000, Epochs: 1, Labeled: true, BatchSize: 256, Batches: 8, C: 1, H: 28, W: 28}, ""},
		{"shard", []string{"source.shards=3", "source.shard=2", "stages.collate.batch_size=100"}, flows.Plan{EpochLen: 666, Epochs: 1, Labeled: true, BatchSize: 100, Batches: 6, C: 1, H: 28, W: 28}, ""},
		{"no batch", []string{"stages.collate.batch_size=4096"}, flows.Plan{}, "fewer than batch_size 4096"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := flows.Load("data", append([]string{"source.path=builtin:test"}, tc.sets...))
			if err != nil {
				t.Fatal(err)
			}
			p, err := flows.PlanOf(spec)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "last: pad") {
					t.Fatalf("err = %v, want one containing %q and what to change", err, tc.wantErr)
				}
				return
			}
			if p.Memory.Total <= p.Memory.Base || p.Memory.Data <= 0 {
				t.Errorf("PlanOf's memory estimate %+v has no data", p.Memory)
			}
			p.Memory = flows.MemoryEstimate{} // TestMemoryEstimate's business
			if err != nil || p != tc.want {
				t.Errorf("PlanOf = %+v, %v; want %+v", p, err, tc.want)
			}
		})
	}
}
