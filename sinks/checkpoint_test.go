package sinks

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/contrastream/contrastream/sinks/safetensors"
)

func testCheckpoint(step int64) Checkpoint {
	return Checkpoint{
		Model: map[string]safetensors.Tensor{"backbone.0.weight": {Shape: []int{2, 2}, F32: []float32{1, 2, 3, float32(step)}}},
		State: map[string]safetensors.Tensor{"queue": {Shape: []int{1, 2}, F32: []float32{0.6, 0.8}}, "queue.ptr": {Shape: []int{1}, I64: []int64{step}}},
		Info:  CheckpointInfo{Step: step, Epoch: 1, Offset: 512, Seed: 7, Flow: "name: moco\n"},
	}
}

func TestCheckpointRoundTripAndReplace(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "ckpt")
	for _, step := range []int64{10, 20} { // the second write replaces the first
		if err := WriteCheckpoint(dir, testCheckpoint(step)); err != nil {
			t.Fatal(err)
		}
		c, err := ReadCheckpoint(dir)
		if err != nil {
			t.Fatal(err)
		}
		if c.Info.Step != step || c.Info.Offset != 512 || c.Info.Format != CheckpointFormat || c.Info.Versions["go"] == "" {
			t.Errorf("info %+v", c.Info)
		}
		if w := c.Model["backbone.0.weight"].F32; !slices.Equal(w, []float32{1, 2, 3, float32(step)}) {
			t.Errorf("model weight %v", w)
		}
		if p := c.State["queue.ptr"].I64; !slices.Equal(p, []int64{step}) {
			t.Errorf("queue.ptr %v", p)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(dir))
	if len(entries) != 1 || entries[0].Name() != "ckpt" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("the run folder holds %v; temporary folders were left behind", names)
	}
}

func TestReadCheckpointRejects(t *testing.T) {
	root := t.TempDir()
	good := filepath.Join(root, "good")
	if err := WriteCheckpoint(good, testCheckpoint(1)); err != nil {
		t.Fatal(err)
	}
	copyDir := func(name string) string {
		dst := filepath.Join(root, name)
		os.MkdirAll(dst, 0o755)
		for _, f := range []string{ModelFile, StateFile, InfoFile} {
			b, _ := os.ReadFile(filepath.Join(good, f))
			os.WriteFile(filepath.Join(dst, f), b, 0o644)
		}
		return dst
	}
	missing := copyDir("missing")
	os.Remove(filepath.Join(missing, StateFile))
	future := copyDir("future")
	os.WriteFile(filepath.Join(future, InfoFile), []byte(`{"format": 99, "versions": {"contrastream": "v9"}}`), 0o644)
	garbled := copyDir("garbled")
	os.WriteFile(filepath.Join(garbled, ModelFile), []byte("junk"), 0o644)
	for _, tc := range []struct{ dir, want string }{
		{filepath.Join(root, "absent"), "state.json"},
		{missing, "state.safetensors"},
		{future, "format 99"},
		{garbled, "model.safetensors"},
	} {
		_, err := ReadCheckpoint(tc.dir)
		if !errors.Is(err, ErrNotCheckpoint) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrNotCheckpoint naming %q", filepath.Base(tc.dir), err, tc.want)
		}
	}
	// A crash between the two renames leaves only dir.old: it is read.
	os.Rename(good, good+".old")
	if c, err := ReadCheckpoint(good); err != nil || c.Info.Step != 1 {
		t.Errorf("fallback to .old: %v", err)
	}
}

// TestReadCheckpointRefusesHugeInfo: a state.json over MaxInfoBytes (here
// a valid one padded with spaces) is refused, naming the file, its size
// and the limit, rather than read whole.
func TestReadCheckpointRefusesHugeInfo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ckpt")
	if err := WriteCheckpoint(dir, testCheckpoint(1)); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, InfoFile)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, strings.Repeat(" ", MaxInfoBytes+1-len(b))...)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = ReadCheckpoint(dir)
	if !errors.Is(err, ErrNotCheckpoint) {
		t.Fatalf("a state.json of %d bytes: %v, want ErrNotCheckpoint", len(b), err)
	}
	for _, want := range []string{path, fmt.Sprint(len(b)), fmt.Sprint(MaxInfoBytes)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
