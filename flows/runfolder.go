package flows

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/contrastream/contrastream/pipeline"
)

// A run folder holds one training run: its checkpoint folder, its metrics
// and its kNN results. A flow writes nowhere else, and removes nothing but
// what a run writes: runFiles checks every path the sinks name, before
// anything is written, and claims the folder for one process (lockRunDir).

// runMarker is the file that marks a folder as a run folder: which flow
// ran there and which files and checkpoint folder are that run's, so that
// a later run sees the folder is taken whatever names its own sinks use,
// and --force removes exactly the old run's files.
const runMarker = "run.json"

// runRecord is run.json.
type runRecord struct {
	Flow    string    `json:"flow"`
	Started time.Time `json:"started"`
	// Checkpoint is the checkpoint folder and Files the files the run
	// writes, relative to the run folder.
	Checkpoint string   `json:"checkpoint,omitempty"`
	Files      []string `json:"files"`
}

// marker reads the run folder's run.json, or returns nil.
func (r *runFiles) marker() *runRecord {
	b, err := os.ReadFile(filepath.Join(r.dir, runMarker))
	if err != nil {
		return nil
	}
	var rec runRecord
	if json.Unmarshal(b, &rec) != nil {
		return nil
	}
	return &rec
}

// writeMarker writes run.json for a new run of flow.
func (r *runFiles) writeMarker(flow string) error {
	rec := runRecord{Flow: flow, Started: time.Now().UTC(), Files: r.files}
	if ck := r.checkpointDir(); ck != "" {
		rel, err := filepath.Rel(r.dir, ck)
		if err != nil {
			return err
		}
		rec.Checkpoint = rel
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(r.dir, runMarker), append(b, '\n'), 0o644)
}

// runFiles collects the paths a training flow's sinks write, relative to
// the run folder, as the sinks are built; check then vets them together.
type runFiles struct {
	dir   string   // the run folder; "" writes nothing
	ckpt  string   // the checkpoint folder, relative ("" without one)
	files []string // files, relative (metrics, its summary, eval)
	// ckptAt, when set, is where the checkpoint goes instead of
	// dir/ckpt: the folder a resumed run's checkpoint was read from.
	ckptAt string
}

// localPath checks that rel, a path from a flow's config, names something
// strictly inside the run folder: relative, not the folder itself, and
// never above it.
func localPath(rel string) error {
	if rel == "" {
		return nil // the default
	}
	c := filepath.Clean(rel)
	if !filepath.IsLocal(c) || c == "." {
		return fmt.Errorf("%q must name a path inside the run folder (relative, not the folder itself, no '..')", rel)
	}
	return nil
}

// addFile records a file the flow writes, rel to the run folder, and
// returns its path.
func (r *runFiles) addFile(rel string) string {
	r.files = append(r.files, filepath.Clean(rel))
	return filepath.Join(r.dir, rel)
}

// checkpointDir is the checkpoint folder's path.
func (r *runFiles) checkpointDir() string {
	if r.ckptAt != "" {
		return r.ckptAt
	}
	if r.ckpt == "" {
		return ""
	}
	return filepath.Join(r.dir, r.ckpt)
}

// check vets the paths: every one is inside the run folder even through
// symbolic links, no two sinks write the same file, and no file lies in
// the checkpoint folder or in one of the folders a checkpoint write
// replaces (its .old and .new-* siblings), which each write removes.
func (r *runFiles) check() error {
	if r.dir == "" {
		return nil
	}
	seen := map[string]bool{}
	for _, f := range r.files {
		if f == runMarker {
			return fmt.Errorf("run folder: %s is the run folder's own record: name the sink's file otherwise", filepath.Join(r.dir, f))
		}
		if seen[f] {
			return fmt.Errorf("run folder: two sinks write %s", filepath.Join(r.dir, f))
		}
		seen[f] = true
		if ck := r.checkpointDir(); ck != "" && inCheckpointArea(filepath.Join(r.dir, f), ck) {
			return fmt.Errorf("run folder: %s lies in the checkpoint folder %s (or a folder that replaces it), and every checkpoint write would remove it: name a file outside it",
				filepath.Join(r.dir, f), ck)
		}
		if err := resolvesInside(r.dir, filepath.Join(r.dir, f)); err != nil {
			return err
		}
	}
	if r.ckpt != "" && r.ckptAt == "" {
		if err := resolvesInside(r.dir, r.checkpointDir()); err != nil {
			return err
		}
	}
	return nil
}

// inCheckpointArea reports whether path is ck, lies under it, or under
// one of the siblings a checkpoint write makes and removes (ck.old,
// .NAME.new-*).
func inCheckpointArea(path, ck string) bool {
	rel, err := filepath.Rel(filepath.Dir(filepath.Clean(ck)), filepath.Clean(path))
	if err != nil || !filepath.IsLocal(rel) {
		return false
	}
	first, _, _ := strings.Cut(filepath.ToSlash(rel), "/")
	base := filepath.Base(ck)
	return first == base || first == base+".old" || strings.HasPrefix(first, "."+base+".new-")
}

// resolvesInside checks that path, with the symbolic links of the part of
// it that exists resolved, stays inside dir (resolved the same way).
func resolvesInside(dir, path string) error {
	root, err := resolveExisting(dir)
	if err != nil {
		return err
	}
	p, err := resolveExisting(path)
	if err != nil {
		return err
	}
	if rel, err := filepath.Rel(root, p); err != nil || !filepath.IsLocal(rel) || rel == "." {
		return fmt.Errorf("run folder: %s resolves to %s, outside the run folder %s (a symbolic link?)", path, p, dir)
	}
	return nil
}

// resolveExisting resolves the symbolic links of the longest part of path
// that exists, a link whose target is missing included, and joins the
// rest to it.
func resolveExisting(path string) (string, error) {
	for range 40 { // links to links: give up as the system does
		var err error
		if path, err = filepath.Abs(path); err != nil {
			return "", err
		}
		var rest []string // what does not exist, in order
		p := path
		for {
			fi, err := os.Lstat(p)
			if errors.Is(err, fs.ErrNotExist) {
				if filepath.Dir(p) == p {
					return path, nil
				}
				rest = append([]string{filepath.Base(p)}, rest...)
				p = filepath.Dir(p)
				continue
			}
			if err != nil {
				return "", err
			}
			r, err := filepath.EvalSymlinks(p)
			if err == nil {
				return filepath.Join(append([]string{r}, rest...)...), nil
			}
			if fi.Mode()&fs.ModeSymlink == 0 || !errors.Is(err, fs.ErrNotExist) {
				return "", err
			}
			// A dangling link: follow it by hand, and resolve again.
			target, err := os.Readlink(p)
			if err != nil {
				return "", err
			}
			if !filepath.IsAbs(target) {
				target = filepath.Join(filepath.Dir(p), target)
			}
			path = filepath.Join(append([]string{target}, rest...)...)
			break
		}
	}
	return "", fmt.Errorf("%s: too many levels of symbolic links", path)
}

// existing lists the files and folders of a run that exist in the run
// folder, as paths: run.json and those it names, and those of this flow.
func (r *runFiles) existing() []string {
	if r.dir == "" {
		return nil
	}
	var paths []string
	add := func(ck string, files []string) {
		if ck != "" {
			paths = append(paths, ck, ck+".old")
		}
		for _, f := range files {
			paths = append(paths, filepath.Join(r.dir, f))
		}
	}
	paths = append(paths, filepath.Join(r.dir, runMarker))
	if old := r.marker(); old != nil {
		ck := ""
		if old.Checkpoint != "" {
			ck = filepath.Join(r.dir, old.Checkpoint)
		}
		add(ck, old.Files)
	}
	add(r.checkpointDir(), r.files)
	var found []string
	seen := map[string]bool{}
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil && !seen[p] {
			seen[p] = true
			found = append(found, p)
		}
	}
	return found
}

// ErrRunExists is returned (wrapped) when a new run would write into a
// folder that holds another run.
var ErrRunExists = errors.New("the run folder already holds a run")

// NewRunDir makes a new, empty run folder parent/NAME-TIME for a run of
// flow name started at t, adding -2, -3… when one of that name exists
// (two runs started in the same second), and returns its path. Characters
// of name other than letters, digits, '-', '_' and '.' become '_'.
func NewRunDir(parent, name string, t time.Time) (string, error) {
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", err
	}
	safe := []rune(name)
	for i, c := range safe { // a flow's name, not a path
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' && i > 0) {
			safe[i] = '_'
		}
	}
	if len(safe) == 0 {
		safe = []rune("run")
	}
	base := filepath.Join(parent, string(safe)+"-"+t.Format("20060102-150405"))
	for i := 1; i < 1000; i++ {
		dir := base
		if i > 1 {
			dir = fmt.Sprintf("%s-%d", base, i)
		}
		err := os.Mkdir(dir, 0o755)
		if err == nil {
			return dir, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", err
		}
	}
	return "", fmt.Errorf("no free run folder name like %s", base)
}

// resumeRunDir returns the checkpoint folder from (made absolute when it
// is "." or leads out of the working folder) and the run folder it
// belongs to: the folder above the flow's checkpoint dir when from ends
// with it (dir: ck/latest), else from's parent (a checkpoint copied to
// models/best).
func resumeRunDir(spec *pipeline.Spec, from string) (ckpt, run string, err error) {
	ckpt = filepath.Clean(from)
	if !filepath.IsAbs(ckpt) && (ckpt == "." || !filepath.IsLocal(ckpt)) {
		if ckpt, err = filepath.Abs(ckpt); err != nil {
			return "", "", err
		}
	}
	rel := "checkpoint"
	for _, s := range spec.Sinks {
		if c, ok := s.Config.(*CheckpointConfig); ok && c.Dir != "" {
			rel = filepath.Clean(c.Dir)
		}
	}
	if run, ok := strings.CutSuffix(ckpt, string(filepath.Separator)+rel); ok && run != "" {
		return ckpt, run, nil
	}
	if ckpt == rel { // a relative --resume checkpoint
		return ckpt, ".", nil
	}
	return ckpt, filepath.Dir(ckpt), nil
}
