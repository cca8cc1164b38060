package main

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/contrastream/contrastream/sinks"
	"github.com/contrastream/contrastream/sinks/safetensors"
)

// tinyMoCo are the overrides that make the moco flow train 5 steps an epoch
// on 40 built-in images, quickly.
var tinyMoCo = []string{
	"--set", "source.path=builtin:test", "--set", "source.shards=50", "--set", "epochs=3",
	"--set", "stages.augment.size=16", "--set", "stages.collate.batch_size=8", "--set", "stages.encode.hidden=16", "--set", "stages.encode.out=16",
	"--set", "stages.queue.size=64", "--set", "stages.queue.dim=16",
	"--set", "sinks.knn.test={path: builtin:test, shards: 50, shard: 1}", // the kNN monitor on 40 queries
}

// lines counts the lines of a file (0 when it is not there yet).
func lines(path string) int {
	b, _ := os.ReadFile(path)
	return bytes.Count(b, []byte("\n"))
}

// TestTrainStopInterruptResume trains moco for 2 steps (--max-steps),
// resumes it and interrupts it (as Ctrl-C does) once a third step is
// logged, then resumes it to the end: the interrupted run exits 130 and
// leaves a checkpoint, and every step is logged once.
func TestTrainStopInterruptResume(t *testing.T) {
	dir := t.TempDir()
	run1 := filepath.Join(dir, "run")
	ckDir := filepath.Join(run1, "checkpoint")
	metrics := filepath.Join(run1, "metrics.jsonl")

	code, stdout, stderr := cli(t, append([]string{"train", "-q", "--out", run1, "--max-steps", "2"}, tinyMoCo...)...)
	if code != 0 || !strings.Contains(stdout, "flow moco: 2 steps") || !strings.Contains(stdout, "--resume "+ckDir) {
		t.Fatalf("train --max-steps 2: code %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	if ck, err := sinks.ReadCheckpoint(ckDir); err != nil || ck.Info.Step != 2 {
		t.Fatalf("checkpoint after --max-steps 2: %+v, %v", ck, err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for lines(metrics) < 3 && ctx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	var out, errb bytes.Buffer
	code = run(ctx, []string{"train", "-q", "--resume", ckDir}, &out, &errb)
	if code != 130 || !strings.Contains(errb.String(), "interrupted") || !strings.Contains(out.String(), "checkpoint: "+ckDir) {
		t.Fatalf("interrupted train: code %d\nstdout %s\nstderr %s", code, out.String(), errb.String())
	}
	ck, err := sinks.ReadCheckpoint(ckDir)
	if err != nil || ck.Info.Step < 3 || ck.Info.Step >= 15 {
		t.Fatalf("checkpoint after the interruption: %+v, %v", ck, err)
	}
	if n := lines(metrics); int64(n) != ck.Info.Step {
		t.Errorf("%d metrics lines for %d steps", n, ck.Info.Step)
	}

	code, stdout, stderr = cli(t, "train", "-q", "--resume", ckDir)
	if code != 0 || !strings.Contains(stdout, "flow moco: 15 steps") || !strings.Contains(stdout, "knn top-1") || !strings.Contains(stdout, "after epoch 3") {
		t.Fatalf("resumed train: code %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	if ck, err := sinks.ReadCheckpoint(ckDir); err != nil || ck.Info.Step != 15 || ck.Info.Epoch != 3 {
		t.Fatalf("checkpoint at the end: %+v, %v", ck, err)
	}
	if n := lines(metrics); n != 15 {
		t.Errorf("%d metrics lines for 15 steps", n)
	}
	// Training is done: a further resume says so.
	code, _, stderr = cli(t, "train", "-q", "--resume", ckDir)
	if code != 1 || !strings.Contains(stderr, "training is done") {
		t.Errorf("resume of a finished run: code %d, stderr %q", code, stderr)
	}
}

func TestTrainRefusesBeforeTraining(t *testing.T) {
	dir := t.TempDir()
	args := append([]string{"train", "-q", "--out", filepath.Join(dir, "run")}, tinyMoCo...)
	code, _, stderr := cli(t, append(args, "--set", "stages.queue.dim=32")...)
	if code != 1 || !strings.Contains(stderr, "dim") || !strings.Contains(stderr, "set the queue's dim to 16") {
		t.Errorf("queue dim 32, encoder out 16: code %d, stderr %q", code, stderr)
	}
	code, _, stderr = cli(t, append(args, "--max-steps", "-1")...)
	if code != 2 || !strings.Contains(stderr, "max-steps") {
		t.Errorf("--max-steps -1: code %d, stderr %q", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "run")); !os.IsNotExist(err) {
		t.Errorf("a refused run wrote its run folder: %v", err)
	}
	// A non-finite loss: exit 1, naming the step.
	code, _, stderr = cli(t, append(args, "--set", "stages.optimize.lr=1e30")...)
	if code != 1 || !strings.Contains(stderr, "step 1 ") || !strings.Contains(stderr, "the loss is") {
		t.Errorf("lr 1e30: code %d, stderr %q", code, stderr)
	}
}

// TestTrainRunFolders: a second train --out on a run is refused unless
// --force; the default run folders of two runs differ; a resume writes
// only where its checkpoint lives; --flow on a resume is checked against
// the checkpoint's flow, and --init-from starts another flow from its
// weights.
func TestTrainRunFolders(t *testing.T) {
	dir := t.TempDir()
	models := filepath.Join(dir, "models")
	short := append([]string{"train", "-q", "--max-steps", "1"}, tinyMoCo...)
	short = append(short, "--set", "sinks.knn.every=0")
	if code, stdout, stderr := cli(t, append(short, "--out", models)...); code != 0 {
		t.Fatalf("train: code %d\n%s\n%s", code, stdout, stderr)
	}
	code, _, stderr := cli(t, append(short, "--out", models)...)
	if code != 1 || !strings.Contains(stderr, "already holds a run") || !strings.Contains(stderr, "--force") {
		t.Errorf("second train --out on a run: code %d, stderr %q", code, stderr)
	}
	if n := lines(filepath.Join(models, "metrics.jsonl")); n != 1 {
		t.Errorf("the refused run changed metrics.jsonl: %d lines", n)
	}

	// models/best is a copy of the run's checkpoint; models/checkpoint
	// becomes something else of the user's.
	best := filepath.Join(models, "best")
	if err := os.Rename(filepath.Join(models, "checkpoint"), best); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(models, "checkpoint", "notes.txt")
	os.MkdirAll(filepath.Dir(other), 0o755)
	os.WriteFile(other, []byte("mine"), 0o644)
	code, stdout, stderr := cli(t, "train", "-q", "--max-steps", "2", "--resume", best)
	if code != 0 || !strings.Contains(stdout, "checkpoint: "+best) {
		t.Fatalf("train --resume %s: code %d\n%s\n%s", best, code, stdout, stderr)
	}
	if ck, err := sinks.ReadCheckpoint(best); err != nil || ck.Info.Step != 2 {
		t.Errorf("the resumed run's checkpoint: %+v, %v; want step 2 in %s", ck, err, best)
	}
	if b, err := os.ReadFile(other); err != nil || string(b) != "mine" {
		t.Errorf("the resume touched %s: %q, %v", other, b, err)
	}

	// --flow simclr on a moco checkpoint is refused, --init-from is not.
	code, _, stderr = cli(t, "train", "-q", "--max-steps", "3", "--resume", best, "--flow", "simclr")
	if code != 1 || !strings.Contains(stderr, "queue") || !strings.Contains(stderr, "--init-from") {
		t.Errorf("--flow simclr --resume <moco>: code %d, stderr %q", code, stderr)
	}
	fresh := filepath.Join(dir, "fresh")
	simclr := []string{"train", "-q", "--flow", "simclr", "--max-steps", "1", "--out", fresh, "--init-from", best,
		"--set", "source.path=builtin:test", "--set", "source.shards=50", "--set", "stages.augment.size=16", "--set", "stages.collate.batch_size=8",
		"--set", "stages.encode.hidden=16", "--set", "stages.encode.out=16", "--set", "sinks.knn.every=0"}
	if code, stdout, stderr := cli(t, simclr...); code != 0 {
		t.Fatalf("--init-from: code %d\n%s\n%s", code, stdout, stderr)
	}
	if ck, err := sinks.ReadCheckpoint(filepath.Join(fresh, "checkpoint")); err != nil || ck.Info.Step != 1 {
		t.Errorf("--init-from run: %+v, %v", ck, err)
	}

	// --force replaces the run.
	if code, stdout, stderr := cli(t, append(short, "--out", fresh, "--force")...); code != 0 {
		t.Fatalf("--force: code %d\n%s\n%s", code, stdout, stderr)
	}
	if n := lines(filepath.Join(fresh, "metrics.jsonl")); n != 1 {
		t.Errorf("after --force: %d metrics lines, want the new run's 1", n)
	}

	// Default run folders: two runs in one second get two folders.
	wd, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	for range 2 {
		if code, stdout, stderr := cli(t, short...); code != 0 {
			t.Fatalf("train: code %d\n%s\n%s", code, stdout, stderr)
		}
	}
	runs, _ := os.ReadDir(filepath.Join(dir, "runs"))
	if len(runs) != 2 {
		t.Errorf("two runs made %d run folders", len(runs))
	}
}

// TestEvalRefusesNonFiniteWeights: eval on a checkpoint whose weights
// hold a NaN fails, naming the file and tensor, instead of printing an
// accuracy.
func TestEvalRefusesNonFiniteWeights(t *testing.T) {
	run := filepath.Join(t.TempDir(), "run")
	args := append([]string{"train", "-q", "--max-steps", "1", "--out", run}, tinyMoCo...)
	if code, stdout, stderr := cli(t, append(args, "--set", "sinks.knn.every=0")...); code != 0 {
		t.Fatalf("train: code %d\n%s\n%s", code, stdout, stderr)
	}
	ckDir := filepath.Join(run, "checkpoint")
	ck, err := sinks.ReadCheckpoint(ckDir)
	if err != nil {
		t.Fatal(err)
	}
	// Poison the file as a broken writer would (WriteCheckpoint refuses).
	w := ck.Model["backbone.0.weight"]
	w.F32[3] = float32(math.NaN())
	if err := safetensors.Write(filepath.Join(ckDir, sinks.ModelFile), ck.Model, nil); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"knn", "linear"} {
		code, stdout, stderr := cli(t, "eval", sub, "--checkpoint", ckDir)
		if code != 1 || !strings.Contains(stderr, "backbone.0.weight") || !strings.Contains(stderr, "NaN") || strings.Contains(stdout, "accuracy") {
			t.Errorf("eval %s on a NaN weight: code %d\nstdout %s\nstderr %s", sub, code, stdout, stderr)
		}
	}
}
