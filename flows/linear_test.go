package flows_test

import (
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/contrastream/contrastream/flows"
	"github.com/contrastream/contrastream/sinks"
	"github.com/contrastream/contrastream/sinks/safetensors"
	"github.com/contrastream/contrastream/sources"
	"github.com/contrastream/contrastream/stages/encode"
)

// tinyEncoder is the random-init encoder of the tiny simclr flow (16×16
// views) and a Parquet file of n samples of the built-in test split.
func tinyEncoder(t *testing.T, n int) (*flows.Encoder, sources.Config) {
	t.Helper()
	spec, err := flows.Load("simclr", tinySets("simclr"))
	if err != nil {
		t.Fatal(err)
	}
	enc, err := flows.NewEncoder(spec)
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(t.TempDir(), "data.parquet")
	writeTinyDataset(t, data, n, true)
	return enc, sources.Config{Path: data}
}

// TestFineTuneLowersTheLoss fine-tunes a random-init encoder with a
// classifier by cross-entropy for a few steps on 200 built-in images
// (no augmentation, so that the loss falls steadily): the loss of the last
// steps is well below that of the first, the encoder given is left as it
// was, and the classifier is a linear map of the features (the head's
// first layer the identity).
func TestFineTuneLowersTheLoss(t *testing.T) {
	enc, data := tinyEncoder(t, 200)
	before := enc.Weights.Clone()
	r, err := flows.FineTune(context.Background(), enc.Weights, flows.EvalAugment(enc.Augment),
		flows.FineTuneConfig{Train: data, Test: data, Epochs: 4, BatchSize: 40, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Losses) != 20 || r.Classes != 10 || r.Total != 200 {
		t.Fatalf("%d steps, %d classes, %d test samples; want 20, 10, 200", len(r.Losses), r.Classes, r.Total)
	}
	first := (r.Losses[0] + r.Losses[1] + r.Losses[2]) / 3
	last := (r.Losses[17] + r.Losses[18] + r.Losses[19]) / 3
	if !(last < 0.8*first) || math.Abs(first-math.Log(10)) > 1 {
		t.Errorf("loss of the first 3 steps %.4f (ln 10 = 2.30), of the last 3 %.4f: want a clear fall; all %.3f", first, last, r.Losses)
	}
	if r.Accuracy <= 0.1 {
		t.Errorf("test top-1 %v after fine-tuning on the test set itself", r.Accuracy)
	}
	for i, p := range enc.Weights.Params {
		if !slices.Equal(p.Data, before.Params[i].Data) {
			t.Errorf("FineTune changed the given encoder's %s", p.Name)
		}
	}
	// head.2 on the features is the network's own projection.
	w := r.Weights
	if w.Out() != 10 || w.Config().Hidden != w.Features() {
		t.Fatalf("fine-tuned head %d→%d→%d", w.Features(), w.Config().Hidden, w.Out())
	}
	rep, err := encode.NewReplica(w, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close()
	in := w.Input()
	x := make([]float32, 4*in.Len())
	for i := range x {
		x[i] = float32(math.Sin(float64(i)))
	}
	feats, proj, err := rep.Forward(x, encode.Eval)
	if err != nil {
		t.Fatal(err)
	}
	d, W, b := w.Features(), w.Tensor("head.2.weight").Data, w.Tensor("head.2.bias").Data
	for i := range 4 {
		for c := range 10 {
			want := float64(b[c])
			for j := range d {
				want += float64(feats[i*d+j]) * float64(W[c*d+j])
			}
			if got := float64(proj[i*10+c]); math.Abs(got-want) > 1e-4*(1+math.Abs(want)) {
				t.Fatalf("image %d class %d: logit %v, features·Wᵀ+b %v", i, c, got, want)
			}
		}
	}
}

// The linear probe of the flows runs on a frozen encoder's features and is
// deterministic.
func TestLinearProbe(t *testing.T) {
	enc, data := tinyEncoder(t, 300)
	last := map[string]int64{}
	cfg := flows.LinearConfig{Train: data, Test: data, Progress: func(phase string, n int64) {
		if n < last[phase] {
			t.Errorf("%s: progress %d after %d", phase, n, last[phase])
		}
		last[phase] = n
	}}
	a, err := flows.Linear(context.Background(), enc.Weights, enc.Augment, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, fit := last["fit"]; last["train"] != 300 || last["test"] != 300 || !fit {
		t.Errorf("progress ended at %v, want train 300, test 300 and fit", last)
	}
	cfg.Progress = nil
	b, err := flows.Linear(context.Background(), enc.Weights, enc.Augment, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if a.Total != 300 || a.Accuracy != b.Accuracy || !slices.Equal(a.Weight, b.Weight) {
		t.Errorf("two probes: %v and %v (%d samples)", a.Accuracy, b.Accuracy, a.Total)
	}
	if a.TrainAccuracy < 0.5 {
		t.Errorf("train top-1 %v on 300 samples of 128 features: the probe does not fit", a.TrainAccuracy)
	}
}

// writeColorFolder writes an image folder of n RGB images of side px in
// two classes.
func writeColorFolder(t *testing.T, n, px int) string {
	t.Helper()
	dir := t.TempDir()
	for i := range n {
		class := filepath.Join(dir, []string{"a", "b"}[i%2])
		if err := os.MkdirAll(class, 0o755); err != nil {
			t.Fatal(err)
		}
		img := image.NewRGBA(image.Rect(0, 0, px, px))
		for p := range px * px {
			img.Set(p%px, p/px, color.RGBA{uint8(40 * i), uint8(p), 200, 255})
		}
		f, err := os.Create(filepath.Join(class, strings.Repeat("x", i+1)+".png"))
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	return dir
}

// Evaluating an encoder on data of another image size or channel count is
// an error that names the dataset and both shapes, before any work.
func TestEvalOnDataOfAnotherShape(t *testing.T) {
	enc, data := tinyEncoder(t, 20)
	color := sources.Config{Path: writeColorFolder(t, 4, 16)} // 3×16×16; the encoder takes 1×16×16
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		run  func() error
	}{
		{"knn test", func() error {
			_, err := flows.KNN(ctx, enc.Weights, enc.Augment, flows.KNNConfig{Train: data, Test: color})
			return err
		}},
		{"linear train", func() error {
			_, err := flows.Linear(ctx, enc.Weights, enc.Augment, flows.LinearConfig{Train: color, Test: data})
			return err
		}},
		{"finetune", func() error {
			_, err := flows.FineTune(ctx, enc.Weights, enc.Augment, flows.FineTuneConfig{Train: data, Test: color, Epochs: 1, BatchSize: 4})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if err == nil {
				t.Fatal("no error")
			}
			for _, want := range []string{color.Path, "3×16×16", "1×16×16", "channel count"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}

// A checkpoint folder that is incomplete, of another version, or whose
// weights are not its flow's encoder cannot be evaluated: LoadEncoder says
// what is wrong, and never panics.
func TestLoadEncoderRefusesBadCheckpoints(t *testing.T) {
	run := t.TempDir()
	if err := prepare(t, "simclr", tinySets("simclr"), flows.JobOptions{RunDir: run, MaxSteps: 1}).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(run, "checkpoint")
	if _, err := flows.LoadEncoder(good); err != nil {
		t.Fatalf("the good checkpoint: %v", err)
	}
	ck := readCheckpoint(t, good)
	variant := func(t *testing.T, edit func(dir string, ck *sinks.Checkpoint)) string {
		dir := filepath.Join(t.TempDir(), "checkpoint")
		c := *ck
		c.Model = map[string]safetensors.Tensor{}
		for k, v := range ck.Model {
			c.Model[k] = v
		}
		c.Info.Extra = map[string]string{}
		for k, v := range ck.Info.Extra {
			c.Info.Extra[k] = v
		}
		if err := sinks.WriteCheckpoint(dir, c); err != nil {
			t.Fatal(err)
		}
		edit(dir, &c)
		return dir
	}
	rewrite := func(dir string, c *sinks.Checkpoint) {
		if err := sinks.WriteCheckpoint(dir, *c); err != nil {
			panic(err)
		}
	}
	for _, tc := range []struct {
		name    string
		edit    func(dir string, c *sinks.Checkpoint)
		want    []string
		notCkpt bool // wraps sinks.ErrNotCheckpoint
	}{
		{"no model.safetensors", func(dir string, _ *sinks.Checkpoint) { os.Remove(filepath.Join(dir, sinks.ModelFile)) },
			[]string{"model.safetensors", "not a complete"}, true},
		{"no state.json", func(dir string, _ *sinks.Checkpoint) { os.Remove(filepath.Join(dir, sinks.InfoFile)) },
			[]string{"state.json", "not a complete"}, true},
		{"not a folder", func(dir string, _ *sinks.Checkpoint) { os.RemoveAll(dir) }, []string{"state.json"}, true},
		{"another format version", func(dir string, _ *sinks.Checkpoint) {
			p := filepath.Join(dir, sinks.InfoFile)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, []byte(strings.Replace(string(b), `"format": 1`, `"format": 7`, 1)), 0o644)
		}, []string{"format 7", "reads format 1"}, true},
		{"state.json garbled", func(dir string, _ *sinks.Checkpoint) {
			os.WriteFile(filepath.Join(dir, sinks.InfoFile), []byte("{\"format\": 1, "), 0o644)
		}, []string{"state.json"}, true},
		{"model.safetensors truncated", func(dir string, _ *sinks.Checkpoint) {
			p := filepath.Join(dir, sinks.ModelFile)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)/2], 0o644)
		}, []string{"model.safetensors"}, true},
		{"a tensor missing", func(dir string, c *sinks.Checkpoint) {
			c.Model["backbone.0.conv"] = c.Model["backbone.0.weight"]
			delete(c.Model, "backbone.0.weight")
			rewrite(dir, c)
		}, []string{"model.safetensors", "backbone.0.weight"}, false},
		{"a tensor of another shape", func(dir string, c *sinks.Checkpoint) {
			t := c.Model["backbone.4.weight"] // 64×32×3×3
			c.Model["backbone.4.weight"] = safetensors.Tensor{DType: "F32", Shape: []int{32, 64, 3, 3}, F32: t.F32}
			rewrite(dir, c)
		}, []string{"backbone.4.weight", "shape [32 64 3 3]"}, false},
		{"a flow of another version", func(dir string, c *sinks.Checkpoint) {
			c.Info.Flow = strings.Replace(c.Info.Flow, "kind: encode", "kind: encode\n    dropout: 0.1", 1)
			rewrite(dir, c)
		}, []string{"does not parse in this version", "dropout"}, false},
		{"no flow", func(dir string, c *sinks.Checkpoint) { c.Info.Flow = ""; rewrite(dir, c) }, []string{"records no flow"}, false},
		{"a bad input shape", func(dir string, c *sinks.Checkpoint) { c.Info.Extra["input"] = "big"; rewrite(dir, c) }, []string{"input", "big"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := variant(t, tc.edit)
			_, err := flows.LoadEncoder(dir)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range append(tc.want, dir) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if tc.notCkpt != errors.Is(err, sinks.ErrNotCheckpoint) {
				t.Errorf("errors.Is(err, ErrNotCheckpoint) = %v", !tc.notCkpt)
			}
		})
	}
	// Without the input shape in state.json (an older checkpoint), the
	// flow's data give it; when they cannot be read, the error says so.
	old := variant(t, func(dir string, c *sinks.Checkpoint) {
		delete(c.Info.Extra, "input")
		c.Info.Flow = strings.Replace(c.Info.Flow, "builtin:test", filepath.Join(t.TempDir(), "gone.parquet"), 1)
		rewrite(dir, c)
	})
	if _, err := flows.LoadEncoder(old); err == nil || !strings.Contains(err.Error(), "input shape comes from its flow's data") {
		t.Errorf("a checkpoint without its input shape, its data gone: %v", err)
	}
}
