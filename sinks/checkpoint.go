package sinks

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
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
// beside dir, which then takes dir's place by rename. A crash at any point
// leaves either the old checkpoint or the new one at dir (or, in the
// instant between the two renames, the old one at dir+".old"; ReadCheckpoint
// falls back to it).
func WriteCheckpoint(dir string, c Checkpoint) error {
	dir = filepath.Clean(dir)
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".new-*")
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
	if err := safetensors.Write(filepath.Join(tmp, StateFile), c.State, nil); err != nil {
		return err
	}
	info, err := json.MarshalIndent(c.Info, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileSync(filepath.Join(tmp, InfoFile), append(info, '\n')); err != nil {
		return err
	}
	syncDir(tmp)
	old := dir + ".old"
	if err := os.RemoveAll(old); err != nil {
		return err
	}
	if _, err := os.Stat(dir); err == nil {
		if err := os.Rename(dir, old); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	syncDir(parent)
	return os.RemoveAll(old)
}

func writeFileSync(path string, b []byte) error {
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
// is read instead.
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
