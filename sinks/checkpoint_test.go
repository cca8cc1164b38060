package sinks

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math"
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

// A crash between the two renames leaves dir missing and the last good
// checkpoint at dir.old; a stale dir.old can sit beside a complete dir
// after a crash before its removal. The next write ends with its own
// checkpoint at dir and no dir.old.
func TestWriteCheckpointAfterCrashStates(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(dir string)
	}{
		{"dir missing, dir.old complete", func(dir string) { os.Rename(dir, dir+".old") }},
		{"dir complete, stale dir.old", func(dir string) {
			copyCheckpoint(t, dir, dir+".old")
			os.WriteFile(filepath.Join(dir+".old", InfoFile), []byte(`{"format": 1, "step": 0}`), 0o644)
		}},
		{"dir complete, partly removed dir.old", func(dir string) {
			copyCheckpoint(t, dir, dir+".old")
			os.Remove(filepath.Join(dir+".old", ModelFile))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ckpt")
			if err := WriteCheckpoint(dir, testCheckpoint(1)); err != nil {
				t.Fatal(err)
			}
			tc.setup(dir)
			if c, err := ReadCheckpoint(dir); err != nil || c.Info.Step != 1 {
				t.Fatalf("the crash state does not read as step 1: %v", err)
			}
			if err := WriteCheckpoint(dir, testCheckpoint(2)); err != nil {
				t.Fatal(err)
			}
			if c, err := ReadCheckpoint(dir); err != nil || c.Info.Step != 2 {
				t.Errorf("after the write: %v, %+v", err, c)
			}
			if got := slices.Sorted(maps.Keys(snapshot(t, filepath.Dir(dir)))); !slices.Equal(got, []string{".", "ckpt", "ckpt/" + ModelFile, "ckpt/" + InfoFile, "ckpt/" + StateFile}) {
				t.Errorf("the folder holds %v", got)
			}
		})
	}
}

// Temporary folders of crashed writes are removed by the next write, but
// only those named as WriteCheckpoint names them and holding only
// checkpoint files, complete or partial.
func TestWriteCheckpointRemovesOrphans(t *testing.T) {
	run := t.TempDir()
	dir := filepath.Join(run, "ckpt")
	if err := WriteCheckpoint(dir, testCheckpoint(1)); err != nil {
		t.Fatal(err)
	}
	orphan := func(name string, files ...string) {
		p := filepath.Join(run, name)
		os.MkdirAll(p, 0o755)
		for _, f := range files {
			os.WriteFile(filepath.Join(p, f), []byte("partial"), 0o644)
		}
	}
	orphan(".ckpt.new-123")
	copyCheckpoint(t, dir, filepath.Join(run, ".ckpt.new-123")) // complete, never renamed
	orphan(".ckpt.new-456", ModelFile, "."+StateFile+".789")    // killed inside safetensors.Write
	orphan(".ckpt.new-7")                                       // killed right after os.MkdirTemp
	removed := []string{".ckpt.new-123", ".ckpt.new-456", ".ckpt.new-7"}
	orphan(".ckpt.new-77", ModelFile, "notes.txt") // someone else's file inside
	orphan(".ckpt.new-78", "."+InfoFile+".5")      // not a temporary file safetensors.Write makes
	orphan(".ckpt.new-79/sub", ModelFile)          // a sub-folder
	orphan(".ckpt.new-x1", ModelFile)              // not os.MkdirTemp's digits
	orphan(".ckpt.new-", ModelFile)
	orphan("ckpt.new-1", ModelFile)      // no leading dot
	orphan(".other.new-1", ModelFile)    // another checkpoint's
	orphan(".ckpt.old.new-1", ModelFile) // another checkpoint's
	os.WriteFile(filepath.Join(run, ".ckpt.new-9"), []byte("a file"), 0o644)
	before := snapshot(t, run)
	if err := WriteCheckpoint(dir, testCheckpoint(2)); err != nil {
		t.Fatal(err)
	}
	after := snapshot(t, run)
	for p, v := range before {
		top := strings.Split(p, string(filepath.Separator))[0]
		switch {
		case top == "ckpt":
		case slices.Contains(removed, top):
			if _, ok := after[p]; ok {
				t.Errorf("the orphan %s was left behind", p)
			}
		case after[p] != v:
			t.Errorf("%s was changed or removed", p)
		}
	}
	if c, err := ReadCheckpoint(dir); err != nil || c.Info.Step != 2 {
		t.Errorf("after the write: %v", err)
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

// crashDelay is the testing aid's delay in the crash tests: long enough for
// the test to see each stage of the write and kill it there.
const crashDelay = 200 * time.Millisecond

// killWrite starts a process that writes the checkpoint of step to dir
// with the testing aid's delay, waits until at(tmp) holds for a temporary
// folder tmp that did not exist before, then sleeps for wait and kills the
// process (SIGKILL). It reports whether the kill landed before the write
// ended.
func killWrite(t *testing.T, dir string, step int64, at func(tmp string) bool, wait time.Duration) bool {
	t.Helper()
	temps := func() []string {
		m, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), "."+filepath.Base(dir)+".new-*"))
		return m
	}
	existing := temps()
	cmd, out, done := startWriter(t, dir, step, crashDelay)
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("the writing process failed: %v\n%s", err, out.String())
			}
			return false
		case <-time.After(time.Millisecond):
		}
		if slices.ContainsFunc(temps(), func(tmp string) bool { return !slices.Contains(existing, tmp) && at(tmp) }) {
			break
		}
	}
	time.Sleep(wait)
	cmd.Process.Kill()
	if err := <-done; err != nil && cmd.ProcessState.ExitCode() != -1 { // -1: ended by the signal
		t.Fatalf("the writing process failed: %v\n%s", err, out.String())
	}
	return cmd.ProcessState.ExitCode() == -1
}

// With the testing aid's delay, a kill lands inside a checkpoint write,
// and whatever sequence of kills, the last good checkpoint survives and the
// next write completes and cleans up. The run starts from the state a
// crash between the two renames leaves: dir missing, the last good
// checkpoint at dir.old.
func TestCheckpointSurvivesKilledWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes and waits on the delay")
	}
	dir := filepath.Join(t.TempDir(), "ckpt")
	if err := WriteCheckpoint(dir, testCheckpoint(1)); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dir, dir+".old"); err != nil {
		t.Fatal(err)
	}
	has := func(f string) func(string) bool {
		return func(tmp string) bool { _, err := os.Stat(filepath.Join(tmp, f)); return err == nil }
	}
	for i, kill := range []struct {
		what string
		at   func(tmp string) bool
		wait time.Duration
	}{
		{"after the model file", has(ModelFile), 0},
		{"after the state file", has(StateFile), 0},
		{"after state.json", has(InfoFile), 0},
		// Past the delay after state.json, in the one before the last
		// rename: the new checkpoint is complete, not yet in place.
		{"before the last rename", has(InfoFile), crashDelay * 3 / 2},
	} {
		step := int64(10 + i)
		if !killWrite(t, dir, step, kill.at, kill.wait) {
			t.Errorf("killed %s: the write ended first", kill.what)
		}
		c, err := ReadCheckpoint(dir)
		if err != nil {
			t.Fatalf("killed %s: the last good checkpoint is lost: %v", kill.what, err)
		}
		if c.Info.Step != 1 {
			t.Errorf("killed %s: step %d, want the last good 1", kill.what, c.Info.Step)
		}
	}
	if err := WriteCheckpoint(dir, testCheckpoint(2)); err != nil {
		t.Fatal(err)
	}
	if c, err := ReadCheckpoint(dir); err != nil || c.Info.Step != 2 {
		t.Errorf("after the killed writes: %v", err)
	}
	if got := slices.Sorted(maps.Keys(snapshot(t, filepath.Dir(dir)))); !slices.Equal(got, []string{".", "ckpt", "ckpt/" + ModelFile, "ckpt/" + InfoFile, "ckpt/" + StateFile}) {
		t.Errorf("the killed writes left %v", got)
	}
}

// A NaN or an infinity is never saved: the write is refused with the file,
// the tensor and the index named, and nothing is touched.
func TestWriteCheckpointRefusesNonFinite(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, tc := range []struct {
		name   string
		spoil  func(c *Checkpoint)
		naming []string
	}{
		{"NaN in the model", func(c *Checkpoint) { c.Model["backbone.0.weight"].F32[2] = nan },
			[]string{ModelFile, `"backbone.0.weight"`, "NaN at index 2"}},
		{"+Inf in the state", func(c *Checkpoint) { c.State["queue"].F32[1] = inf },
			[]string{StateFile, `"queue"`, "+Inf at index 1"}},
		{"-Inf in the model", func(c *Checkpoint) {
			c.Model["backbone.1.bias"] = safetensors.Tensor{Shape: []int{3}, F32: []float32{0, -inf, nan}}
		}, []string{ModelFile, `"backbone.1.bias"`, "-Inf at index 1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ckpt")
			if err := WriteCheckpoint(dir, testCheckpoint(1)); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, filepath.Dir(dir))
			c := testCheckpoint(2)
			tc.spoil(&c)
			err := WriteCheckpoint(dir, c)
			if !errors.Is(err, ErrNonFinite) {
				t.Fatalf("WriteCheckpoint = %v, want ErrNonFinite", err)
			}
			for _, w := range append(tc.naming, dir) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if after := snapshot(t, filepath.Dir(dir)); !maps.Equal(before, after) {
				t.Errorf("the refused write changed the folder: %v", slices.Sorted(maps.Keys(after)))
			}
		})
	}
}

// A NaN or an infinity is never loaded, whoever wrote the file; F64 values
// too large for float32 become infinities and are refused too.
func TestReadCheckpointRefusesNonFinite(t *testing.T) {
	for _, tc := range []struct {
		name   string
		file   string
		data   []byte // the file, replacing the good one
		naming []string
	}{
		{"NaN in the model", ModelFile, encode(t, map[string]safetensors.Tensor{
			"backbone.0.weight": {Shape: []int{2, 2}, F32: []float32{1, 2, float32(math.NaN()), 4}}}),
			[]string{ModelFile, `"backbone.0.weight"`, "NaN at index 2"}},
		{"-Inf in the state", StateFile, encode(t, map[string]safetensors.Tensor{
			"queue": {Shape: []int{1, 2}, F32: []float32{float32(math.Inf(-1)), 0.8}}, "queue.ptr": {Shape: []int{1}, I64: []int64{1}}}),
			[]string{StateFile, `"queue"`, "-Inf at index 0"}},
		{"F64 beyond float32", StateFile, f64File(`"queue"`, []int{1, 2}, 0.5, 1e300),
			[]string{StateFile, `"queue"`, "+Inf at index 1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ckpt")
			if err := WriteCheckpoint(dir, testCheckpoint(1)); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, tc.file), tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ReadCheckpoint(dir)
			if !errors.Is(err, ErrNonFinite) {
				t.Fatalf("ReadCheckpoint = %v, want ErrNonFinite", err)
			}
			for _, w := range append(tc.naming, "checkpoint "+dir+": ") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func encode(t *testing.T, tensors map[string]safetensors.Tensor) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := safetensors.Encode(&buf, tensors, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// f64File is a safetensors file holding one F64 tensor, as PyTorch writes
// a float64 one.
func f64File(name string, shape []int, values ...float64) []byte {
	var data []byte
	for _, v := range values {
		data = binary.LittleEndian.AppendUint64(data, math.Float64bits(v))
	}
	h := fmt.Sprintf(`{%s:{"dtype":"F64","shape":[%d,%d],"data_offsets":[0,%d]}}`, name, shape[0], shape[1], len(data))
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	return append(append(b, h...), data...)
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
