package sinks

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/contrastream/contrastream/sinks/safetensors"
)

// CheckpointFormat is the version of the checkpoint layout this code
// writes; ReadCheckpoint refuses any other.
const CheckpointFormat = 1

// The files of a checkpoint folder.
const (
	ModelFile = "model.safetensors" // encoder weights, PyTorch-like names
	StateFile = "state.safetensors" // optimizer moments, key encoder, queue
	InfoFile  = "state.json"        // where training stands
)

// CheckpointInfo is state.json: where training stands and how it was set
// up, so that a run can resume exactly and a reader knows what it holds.
type CheckpointInfo struct {
	// Format is CheckpointFormat.
	Format int `json:"format"`
	// Step is the number of optimizer steps taken.
	Step int64 `json:"step"`
	// Epoch is the epoch in progress, from 0, and Offset the number of
	// samples of it already consumed (of this shard).
	Epoch  int   `json:"epoch"`
	Offset int64 `json:"offset"`
	// Seed is the flow's seed.
	Seed int64 `json:"seed"`
	// Flow is the flow spec as YAML, with its defaults filled in.
	Flow string `json:"flow"`
	// Versions names what wrote the checkpoint: "go", "contrastream".
	Versions map[string]string `json:"versions"`
	// Written is when the checkpoint was written (UTC).
	Written time.Time `json:"written"`
	// Extra holds anything else a flow records (the encoder's kind, the
	// loss's last value…).
	Extra map[string]string `json:"extra,omitempty"`
}

// Checkpoint is a checkpoint folder's content.
type Checkpoint struct {
	// Model is the encoder's weights (and BatchNorm running statistics) by
	// PyTorch-like names ("backbone.0.weight"), readable by any
	// safetensors reader.
	Model map[string]safetensors.Tensor
	// State is the rest of the training state: optimizer moments, the
	// momentum encoder, the MoCo queue.
	State map[string]safetensors.Tensor
	// Info is state.json.
	Info CheckpointInfo
}

// WriteCheckpoint writes c to the folder dir, replacing what is there,
// atomically: the three files are written and fsynced in a new folder
// beside dir (".NAME.new-*"), which then takes dir's place by rename, the
// old checkpoint stepping aside to dir+".old" until the new one is in
// place. Through any sequence of crashes, dir or dir+".old" holds the last
// complete checkpoint (ReadCheckpoint falls back to dir+".old"), and the
// next write keeps it until its own is in place. Temporary folders that
// crashed writes left beside dir are removed.
//
// WriteCheckpoint removes only what it could have written: if dir or
// dir+".old" holds anything but the checkpoint files (model.safetensors,
// state.safetensors, state.json), for instance because dir is a run folder
// holding the user's own files, it returns an error naming the folder and
// the first such entry, and changes nothing. A checkpoint whose Model or
// State holds a NaN or an infinity is refused the same way (the error
// wraps ErrNonFinite and names the file, the tensor and the index).
//
// One writer per dir at a time: a concurrent write to the same dir may
// remove the other's temporary folder.
func WriteCheckpoint(dir string, c Checkpoint) error {
	dir = filepath.Clean(dir)
	parent, base, old := filepath.Dir(dir), filepath.Base(dir), dir+".old"
	// Refuse before touching anything.
	for _, f := range []struct {
		name    string
		tensors map[string]safetensors.Tensor
	}{{ModelFile, c.Model}, {StateFile, c.State}} {
		if err := checkFinite(f.tensors); err != nil {
			return fmt.Errorf("checkpoint %s: refusing to write %s: %w", dir, f.name, err)
		}
	}
	exists, err := ownFolder(dir, false)
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	if _, err := ownFolder(old, false); err != nil {
		return fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	removeOrphans(parent, base)
	tmp, err := os.MkdirTemp(parent, "."+base+tempInfix+"*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // no-op after the rename
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	c.Info.Format = CheckpointFormat
	if c.Info.Versions == nil {
		c.Info.Versions = Versions()
	}
	if c.Info.Written.IsZero() {
		c.Info.Written = time.Now().UTC()
	}
	if err := safetensors.Write(filepath.Join(tmp, ModelFile), c.Model, map[string]string{"format": "contrastream checkpoint model"}); err != nil {
		return err
	}
	testDelay()
	if err := safetensors.Write(filepath.Join(tmp, StateFile), c.State, nil); err != nil {
		return err
	}
	testDelay()
	info, err := json.MarshalIndent(c.Info, "", "  ")
	if err != nil {
		return err
	}
	if err := WriteFileSync(filepath.Join(tmp, InfoFile), append(info, '\n')); err != nil {
		return err
	}
	testDelay()
	syncDir(tmp)
	// Only complete folders are ever renamed to dir, so an existing dir is
	// the last good checkpoint and a dir+".old" beside it is stale. With
	// dir missing (a crash between the two renames), dir+".old" is the
	// last good one: it stays until the new one is in place.
	if exists {
		if err := os.RemoveAll(old); err != nil {
			return err
		}
		testDelay()
		if err := os.Rename(dir, old); err != nil {
			return err
		}
	}
	testDelay()
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	syncDir(parent)
	return os.RemoveAll(old)
}

// tempInfix is in the names of WriteCheckpoint's temporary folders:
// "." + the checkpoint folder's name + tempInfix + digits (os.MkdirTemp's).
const tempInfix = ".new-"

// isCheckpointFile reports whether name is one of a checkpoint's files.
func isCheckpointFile(name string) bool {
	return name == ModelFile || name == StateFile || name == InfoFile
}

// isPartialFile reports whether name is a temporary file that
// safetensors.Write makes for a checkpoint file ("." + file + "." +
// digits), which a crash can leave in a temporary folder.
func isPartialFile(name string) bool {
	for _, f := range []string{ModelFile, StateFile} {
		if rest, ok := strings.CutPrefix(name, "."+f+"."); ok && allDigits(rest) {
			return true
		}
	}
	return false
}

func allDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// ownFolder reports whether dir exists, and returns an error if it does
// but is not a folder WriteCheckpoint could have made: a folder holding
// only checkpoint files (plain files, no sub-folders), and, when partial
// (a temporary folder of a crashed write), the temporary files of
// safetensors.Write.
func ownFolder(dir string, partial bool) (bool, error) {
	st, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !st.IsDir() {
		what := "a file"
		if st.Mode()&fs.ModeSymlink != 0 {
			what = "a symbolic link"
		}
		return true, fmt.Errorf("%s is %s, not a folder that WriteCheckpoint wrote; refusing to replace or remove it", dir, what)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return true, err
	}
	for _, e := range entries {
		if e.Type().IsRegular() && (isCheckpointFile(e.Name()) || partial && isPartialFile(e.Name())) {
			continue
		}
		what := "the file"
		switch {
		case e.IsDir():
			what = "the folder"
		case !e.Type().IsRegular():
			what = "the non-regular file"
		}
		return true, fmt.Errorf("%s holds %s %q, which is not a checkpoint file (only %s, %s and %s are); refusing to replace or remove it",
			dir, what, e.Name(), ModelFile, StateFile, InfoFile)
	}
	return true, nil
}

// removeOrphans removes the temporary folders that crashed writes of the
// checkpoint folder base left in parent: ".base.new-DIGITS" folders that
// hold only checkpoint files, complete or partial. Anything else is left
// alone; so are errors, since the write that follows matters more.
func removeOrphans(parent, base string) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	prefix := "." + base + tempInfix
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || !allDigits(rest) || !e.IsDir() {
			continue
		}
		path := filepath.Join(parent, e.Name())
		if _, err := ownFolder(path, true); err == nil {
			os.RemoveAll(path)
		}
	}
}

// ErrNonFinite is wrapped by the errors of WriteCheckpoint and
// ReadCheckpoint for a tensor that holds a NaN or an infinity.
var ErrNonFinite = errors.New("non-finite value")

// checkFinite returns an error naming the first tensor (in name order) and
// the first index in it that holds a NaN or an infinity.
func checkFinite(tensors map[string]safetensors.Tensor) error {
	names := make([]string, 0, len(tensors))
	for n := range tensors {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		for i, v := range tensors[n].F32 {
			// All exponent bits set: an infinity or a NaN.
			if math.Float32bits(v)&0x7f800000 == 0x7f800000 {
				return fmt.Errorf("tensor %q holds %v at index %d: %w", n, v, i, ErrNonFinite)
			}
		}
	}
	return nil
}

// WriteFileSync writes b to path (created or truncated, mode 0644) and
// fsyncs it before closing, so that it survives a power loss once
// renamed into place.
func WriteFileSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// MaxInfoBytes is the largest state.json ReadCheckpoint reads: 8 MiB,
// room for a flow spec of pipeline.MaxSpecBytes even if JSON escapes
// every character of it (a '<' is written \u003c), and the rest. A larger
// file is refused without being read whole.
const MaxInfoBytes = 8 << 20

// readInfo reads path, at most MaxInfoBytes of it.
func readInfo(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxInfoBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxInfoBytes {
		size := fmt.Sprintf("more than %d", MaxInfoBytes)
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			size = fmt.Sprint(st.Size())
		}
		return nil, fmt.Errorf("%s is %s bytes, over the limit of %d bytes (8 MiB; a contrastream state.json is a few KB)", path, size, MaxInfoBytes)
	}
	return b, nil
}

// ErrNotCheckpoint is returned (wrapped) by ReadCheckpoint for a folder
// that is not a complete checkpoint of this format.
var ErrNotCheckpoint = errors.New("not a complete contrastream checkpoint")

// ReadCheckpoint reads the checkpoint folder dir. A missing file, a file
// that does not parse, or a checkpoint of another format version is an
// error that says which, wrapping ErrNotCheckpoint. If dir is missing but
// dir+".old" exists (a crash between WriteCheckpoint's two renames), that
// is read instead. A tensor holding a NaN or an infinity is an error that
// wraps ErrNonFinite and names the file, the tensor and the index.
func ReadCheckpoint(dir string) (*Checkpoint, error) {
	dir = filepath.Clean(dir)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if _, oerr := os.Stat(dir + ".old"); oerr == nil {
			dir += ".old"
		}
	}
	b, err := readInfo(filepath.Join(dir, InfoFile))
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w: %v", dir, ErrNotCheckpoint, err)
	}
	var c Checkpoint
	if err := json.Unmarshal(b, &c.Info); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w: %s: %v", dir, ErrNotCheckpoint, InfoFile, err)
	}
	if c.Info.Format != CheckpointFormat {
		return nil, fmt.Errorf("checkpoint %s: %w: format %d, this contrastream reads format %d (written by %v)",
			dir, ErrNotCheckpoint, c.Info.Format, CheckpointFormat, c.Info.Versions)
	}
	for _, f := range []struct {
		name string
		dst  *map[string]safetensors.Tensor
	}{{ModelFile, &c.Model}, {StateFile, &c.State}} {
		st, err := safetensors.Read(filepath.Join(dir, f.name))
		if err != nil {
			return nil, fmt.Errorf("checkpoint %s: %w: %v", dir, ErrNotCheckpoint, err)
		}
		if err := checkFinite(st.Tensors); err != nil {
			return nil, fmt.Errorf("checkpoint %s: %s: %w", dir, f.name, err)
		}
		*f.dst = st.Tensors
	}
	return &c, nil
}

// Versions names the Go toolchain and the contrastream module version that
// run this program.
func Versions() map[string]string {
	v := map[string]string{"go": runtime.Version(), "contrastream": "(devel)"}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		v["contrastream"] = bi.Main.Version
	}
	return v
}

// testDelayEnv names the environment variable of the testing aid that
// doc.go describes.
const testDelayEnv = "CONTRASTREAM_TEST_CHECKPOINT_DELAY"

// testDelayOf parses the value of testDelayEnv: a positive Go duration, or
// 0 (no delay) for anything else.
func testDelayOf(s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0
	}
	return d
}

var testDelayOnce = sync.OnceValue(func() time.Duration { return testDelayOf(os.Getenv(testDelayEnv)) })

// testDelay sleeps for the testing aid's delay, if one is set.
func testDelay() {
	if d := testDelayOnce(); d > 0 {
		time.Sleep(d)
	}
}

// RemoveCheckpoint removes the checkpoint folder dir and its dir.old, each
// only if it holds nothing but the files WriteCheckpoint writes (plain
// files, no sub-folders); otherwise it removes nothing and returns an
// error naming the folder and the foreign entry. A missing folder is not
// an error.
func RemoveCheckpoint(dir string) error {
	dir = filepath.Clean(dir)
	for _, d := range []string{dir, dir + ".old"} {
		if _, err := ownFolder(d, false); err != nil {
			return err
		}
	}
	for _, d := range []string{dir, dir + ".old"} {
		if err := os.RemoveAll(d); err != nil {
			return err
		}
	}
	return nil
}
