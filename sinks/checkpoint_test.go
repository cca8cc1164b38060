package sinks

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

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

// snapshot returns every file and folder under root, with the files'
// contents, so that a test can check that nothing was touched.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		switch {
		case d.IsDir():
			m[rel] = "(folder)"
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(path)
			m[rel] = "(link to " + target + ")"
		default:
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			m[rel] = string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// copyCheckpoint copies the checkpoint files of src that exist into the
// folder dst.
func copyCheckpoint(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{ModelFile, StateFile, InfoFile} {
		if b, err := os.ReadFile(filepath.Join(src, f)); err == nil {
			if err := os.WriteFile(filepath.Join(dst, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// WriteCheckpoint replaces or removes only folders it could have written;
// anything else is an error naming the folder and the first foreign entry,
// and nothing is touched.
func TestWriteCheckpointRefusesForeignFolders(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, run, dir string)
		want  []string // in the error
	}{
		{"a run folder as dir", func(t *testing.T, run, dir string) {
			// checkpoint.dir=".": the run folder, with the user's files.
			os.WriteFile(filepath.Join(run, "metrics.jsonl"), []byte(`{"step":1}`+"\n"), 0o644)
			os.WriteFile(filepath.Join(run, "notes.txt"), []byte("my notes"), 0o644)
			copyCheckpoint(t, filepath.Join(run, "ckpt"), run)
		}, []string{`run holds the folder "ckpt"`}},
		{"a user file in dir", func(t *testing.T, _, dir string) {
			os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("my notes"), 0o644)
		}, []string{`holds the file "notes.txt"`}},
		{"a sub-folder in dir", func(t *testing.T, _, dir string) {
			copyCheckpoint(t, dir, filepath.Join(dir, "best"))
		}, []string{`holds the folder "best"`}},
		{"dir is a file", func(t *testing.T, _, dir string) {
			os.RemoveAll(dir)
			os.WriteFile(dir, []byte("my data"), 0o644)
		}, []string{"is a file"}},
		{"dir is a symbolic link", func(t *testing.T, run, dir string) {
			os.Rename(dir, filepath.Join(run, "elsewhere"))
			if err := os.Symlink("elsewhere", dir); err != nil {
				t.Skip(err)
			}
		}, []string{"is a symbolic link"}},
		{"a user file in dir.old", func(t *testing.T, _, dir string) {
			copyCheckpoint(t, dir, dir+".old")
			os.WriteFile(filepath.Join(dir+".old", "notes.txt"), []byte("my notes"), 0o644)
		}, []string{".old holds the file \"notes.txt\""}},
		{"a user file in dir.old, dir missing", func(t *testing.T, _, dir string) {
			os.Rename(dir, dir+".old")
			os.WriteFile(filepath.Join(dir+".old", "notes.txt"), []byte("my notes"), 0o644)
		}, []string{".old holds the file \"notes.txt\""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := filepath.Join(t.TempDir(), "run")
			ckpt := filepath.Join(run, "ckpt")
			if err := WriteCheckpoint(ckpt, testCheckpoint(1)); err != nil {
				t.Fatal(err)
			}
			dir := ckpt
			if tc.name == "a run folder as dir" {
				dir = run
			}
			tc.setup(t, run, dir)
			before := snapshot(t, filepath.Dir(run))
			err := WriteCheckpoint(dir, testCheckpoint(2))
			if err == nil {
				t.Fatal("WriteCheckpoint replaced a folder it did not write")
			}
			for _, w := range append(tc.want, "checkpoint "+dir+": ") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if after := snapshot(t, filepath.Dir(run)); !maps.Equal(before, after) {
				t.Errorf("the refused write changed the folders:\nbefore %v\nafter  %v", slices.Sorted(maps.Keys(before)), slices.Sorted(maps.Keys(after)))
			}
		})
	}
}

func TestCheckpointTestDelayOf(t *testing.T) {
	for in, want := range map[string]time.Duration{"": 0, "20ms": 20 * time.Millisecond, "1s": time.Second, "junk": 0, "20": 0, "-5ms": 0} {
		if got := testDelayOf(in); got != want {
			t.Errorf("testDelayOf(%q) = %v, want %v", in, got, want)
		}
	}
}

// TestCheckpointWriterProcess is the process that the crash tests kill:
// it writes the checkpoint of step $SINKS_TEST_WRITE_STEP to
// $SINKS_TEST_WRITE_DIR.
func TestCheckpointWriterProcess(t *testing.T) {
	dir := os.Getenv("SINKS_TEST_WRITE_DIR")
	if dir == "" {
		t.Skip("the process that the crash tests start and kill")
	}
	step, _ := strconv.ParseInt(os.Getenv("SINKS_TEST_WRITE_STEP"), 10, 64)
	start := time.Now()
	if err := WriteCheckpoint(dir, testCheckpoint(step)); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("wrote in %d ns\n", time.Since(start))
}

// startWriter starts the process of TestCheckpointWriterProcess, writing
// the checkpoint of step to dir with the testing aid's delay. Its output
// goes to out; done receives what cmd.Wait returns.
func startWriter(t *testing.T, dir string, step int64, delay time.Duration) (cmd *exec.Cmd, out *strings.Builder, done chan error) {
	t.Helper()
	cmd = exec.Command(os.Args[0], "-test.run=^TestCheckpointWriterProcess$")
	cmd.Env = append(os.Environ(), "CONTRASTREAM_TEST_CHECKPOINT_DELAY="+delay.String(),
		"SINKS_TEST_WRITE_DIR="+dir, "SINKS_TEST_WRITE_STEP="+strconv.FormatInt(step, 10))
	out = new(strings.Builder)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done = make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return cmd, out, done
}

// With CONTRASTREAM_TEST_CHECKPOINT_DELAY set, a write that replaces a
// checkpoint sleeps after each of its three files and before each of its
// two renames.
func TestCheckpointTestDelay(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process and waits on the delay")
	}
	dir := filepath.Join(t.TempDir(), "ckpt")
	if err := WriteCheckpoint(dir, testCheckpoint(1)); err != nil {
		t.Fatal(err)
	}
	const delay = 100 * time.Millisecond
	_, out, done := startWriter(t, dir, 2, delay)
	if err := <-done; err != nil {
		t.Fatalf("the writing process failed: %v\n%s", err, out)
	}
	var took time.Duration
	for _, line := range strings.Split(out.String(), "\n") {
		if _, err := fmt.Sscanf(line, "wrote in %d ns", &took); err == nil {
			break
		}
	}
	if took < 5*delay {
		t.Errorf("the write took %v, want at least 5 delays of %v\n%s", took, delay, out)
	}
	if c, err := ReadCheckpoint(dir); err != nil || c.Info.Step != 2 {
		t.Errorf("after the delayed write: %v", err)
	}
}
