package main

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestEvalCommandLine(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"eval"}, 2, "want 'eval knn' or 'eval linear'"},
		{[]string{"eval", "svm"}, 2, `got "svm"`},
		{[]string{"eval", "linear", "-h"}, 0, "-finetune"},
		{[]string{"eval", "knn", "-h"}, 0, "-random-init"},
		{[]string{"eval", "linear"}, 2, "--checkpoint DIR or --random-init FLOW"},
		{[]string{"eval", "linear", "--random-init", "simclr", "--finetune"}, 2, "--finetune needs --epochs"},
		{[]string{"eval", "linear", "--random-init", "simclr", "--epochs", "3"}, 2, "--finetune only"},
		{[]string{"eval", "linear", "--checkpoint", "/no/such/folder"}, 1, "not a complete contrastream checkpoint"},
		{[]string{"eval", "knn", "--checkpoint", "/no/such/folder", "extra"}, 2, `unexpected argument "extra"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, stderr := cli(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("code %d, stderr %q; want %d and %q", code, stderr, tc.code, tc.want)
			}
		})
	}
}

// TestEvalLinearFineTune: eval linear --finetune trains a checkpoint's
// encoder with a classifier on the training step and prints the test
// top-1 with the steps taken; bad images past the limit stop it.
func TestEvalLinearFineTune(t *testing.T) {
	dir := t.TempDir()
	run := filepath.Join(dir, "run")
	args := append([]string{"train", "-q", "--max-steps", "1", "--out", run}, tinyMoCo...)
	if code, stdout, stderr := cli(t, append(args, "--set", "sinks.knn.every=0")...); code != 0 {
		t.Fatalf("train: code %d\n%s\n%s", code, stdout, stderr)
	}
	small := filepath.Join(dir, "small.parquet")
	if code, _, stderr := cli(t, "ingest", "-q", "--per-class", "4", "--out", small, "builtin:test"); code != 0 {
		t.Fatalf("ingest: code %d: %s", code, stderr)
	}
	ft := []string{"eval", "linear", "-q", "--checkpoint", filepath.Join(run, "checkpoint"), "--finetune", "--epochs", "1", "--batch", "8", "--train", small, "--test", small}
	code, stdout, stderr := cli(t, ft...)
	if code != 0 || !strings.Contains(stdout, "finetune accuracy") || !strings.Contains(stdout, "(5 steps of 8,") || !strings.Contains(stdout, "/40)") {
		t.Errorf("eval linear --finetune: code %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	code, _, stderr = cli(t, append(ft, "--lr", "1e6")...)
	if code != 1 || !strings.Contains(stderr, "step ") || !strings.Contains(stderr, "lower the learning rate") {
		t.Errorf("eval linear --finetune --lr 1e6: code %d, stderr %s", code, stderr)
	}
}
