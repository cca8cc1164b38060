package flows

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sinks"
	"github.com/contrastream/contrastream/stages/encode"
	"github.com/contrastream/contrastream/stages/loss"
	"github.com/contrastream/contrastream/stages/optim"
	"github.com/contrastream/contrastream/stages/queue"
)

// A resumed run continues the files of the run it resumes, so that after
// any crash each step has exactly one line in metrics.jsonl and each
// evaluation one in eval.jsonl: the lines of steps past the checkpoint
// (which the resumed run takes again) are dropped, and the lines the
// checkpoint carries (steps taken before it that the metrics sink had not
// yet written) are put back.

// jsonlLine is one line of a JSON-lines file with the step it is of.
type jsonlLine struct {
	step int64
	raw  []byte
}

// readJSONL reads path's lines. A last line that is cut short (the process
// ended while writing it) is dropped; an unreadable line elsewhere is an
// error.
func readJSONL(path string) ([]jsonlLine, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var lines []jsonlLine
	rest := b
	for n := 1; len(rest) > 0; n++ {
		line, after, complete := bytes.Cut(rest, []byte{'\n'})
		rest = after
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var v struct {
			Step *int64 `json:"step"`
		}
		if err := json.Unmarshal(line, &v); err != nil || v.Step == nil {
			if !complete || len(rest) == 0 && !bytes.HasSuffix(b, []byte{'\n'}) {
				break // cut short by a crash
			}
			return nil, fmt.Errorf("%s line %d is not a step record: remove or fix it to resume", path, n)
		}
		lines = append(lines, jsonlLine{*v.Step, slices.Clone(line)})
	}
	return lines, nil
}

// reconcileJSONL rewrites path (if it exists) to hold, in step order, one
// line for each step s with keep(s), the file's own first, then add's. It
// returns the lines kept.
func reconcileJSONL(path string, keep func(int64) bool, add []jsonlLine) ([]jsonlLine, error) {
	lines, err := readJSONL(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	seen := map[int64]bool{}
	var out []jsonlLine
	for _, l := range append(lines, add...) {
		if keep(l.step) && !seen[l.step] {
			seen[l.step] = true
			out = append(out, l)
		}
	}
	slices.SortStableFunc(out, func(a, b jsonlLine) int { return int(a.step - b.step) })
	var buf bytes.Buffer
	for _, l := range out {
		buf.Write(l.raw)
		buf.WriteByte('\n')
	}
	tmp := path + ".resume-tmp"
	if err := sinks.WriteFileSync(tmp, buf.Bytes()); err != nil {
		os.Remove(tmp)
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return nil, err
	}
	return out, nil
}

// reconcileMetrics makes the metrics file hold each step before the
// checkpoint's exactly once, and returns those steps' metrics.
func reconcileMetrics(path string, ck *sinks.Checkpoint) ([]pipeline.StepMetrics, error) {
	var carried []pipeline.StepMetrics
	if s := ck.Info.Extra[pendingMetricsKey]; s != "" {
		if err := json.Unmarshal([]byte(s), &carried); err != nil {
			return nil, fmt.Errorf("checkpoint's %s: %v", pendingMetricsKey, err)
		}
	}
	add := make([]jsonlLine, 0, len(carried))
	for _, m := range carried {
		b, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		add = append(add, jsonlLine{m.Step, b})
	}
	lines, err := reconcileJSONL(path, func(s int64) bool { return s < ck.Info.Step }, add)
	if err != nil {
		return nil, fmt.Errorf("resume: %w", err)
	}
	ms := make([]pipeline.StepMetrics, len(lines))
	for i, l := range lines {
		if err := json.Unmarshal(l.raw, &ms[i]); err != nil {
			return nil, fmt.Errorf("resume: %s: %v", path, err)
		}
	}
	return ms, nil
}

// reconcileEval drops the kNN records of steps past the checkpoint's and
// reports whether one of the checkpoint's own step is there.
func reconcileEval(path string, steps int64) (has bool, err error) {
	lines, err := reconcileJSONL(path, func(s int64) bool { return s <= steps }, nil)
	if err != nil {
		return false, fmt.Errorf("resume: %w", err)
	}
	for _, l := range lines {
		has = has || l.step == steps
	}
	return has, nil
}

// removeRunFiles removes the files of the earlier run in the run folder
// (--force): those its run.json names (or, from before run.json, this
// flow's names), and the checkpoint folder and its .old, each only if it
// holds nothing but checkpoint files. Nothing else is touched.
func (r *runFiles) removeRunFiles() error {
	old := r.marker()
	ckpt, files := r.checkpointDir(), r.files
	if old != nil {
		ckpt, files = "", old.Files
		if old.Checkpoint != "" {
			ckpt = filepath.Join(r.dir, old.Checkpoint)
		}
	}
	for _, f := range files {
		if localPath(f) != nil {
			return fmt.Errorf("%s names %q, not a file of the run folder: remove the old run by hand", filepath.Join(r.dir, runMarker), f)
		}
	}
	if ckpt != "" {
		if err := sinks.RemoveCheckpoint(ckpt); err != nil {
			return err
		}
	}
	for _, f := range append(files, runMarker) {
		if err := os.Remove(filepath.Join(r.dir, f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// checkSameFlow refuses to resume ck under a spec whose training state
// differs: another encoder, method (loss, queue, key encoder) or
// optimizer. Settings that leave the state's shape alone (learning rate,
// epochs, temperature) may change.
func checkSameFlow(spec *pipeline.Spec, ck *sinks.Checkpoint) error {
	have := flowIdentity(spec)
	state := stateKinds(ck)
	if !have.queue && state["queue"] {
		return fmt.Errorf("resume: the checkpoint holds a MoCo queue, and flow %q has none: resume it with its own flow (leave out --flow), or start flow %q from its weights (--init-from)", spec.Name, spec.Name)
	}
	if !have.keyEncoder && state["key"] {
		return fmt.Errorf("resume: the checkpoint holds a momentum (key) encoder, and flow %q has none: resume it with its own flow (leave out --flow), or start flow %q from its weights (--init-from)", spec.Name, spec.Name)
	}
	if ck.Info.Flow == "" {
		return nil
	}
	old, err := pipeline.ParseSpec([]byte(UpgradeRecordedFlow(ck.Info.Flow)), "checkpoint's "+sinks.InfoFile, nil, nil)
	if err != nil {
		return nil // a flow this version no longer reads: the tensors decide
	}
	was := flowIdentity(old)
	if diff := was.diff(have); diff != "" {
		return fmt.Errorf("resume: the checkpoint is of flow %q, and flow %q differs in %s: resume it with its own flow (leave out --flow), or start a new run of flow %q from its weights (--init-from)",
			old.Name, spec.Name, diff, spec.Name)
	}
	return nil
}

// stateKinds lists the prefixes of ck's state tensors ("key", "queue",
// "optim").
func stateKinds(ck *sinks.Checkpoint) map[string]bool {
	kinds := map[string]bool{}
	for name := range ck.State {
		prefix, _, _ := strings.Cut(name, ".")
		kinds[prefix] = true
	}
	return kinds
}

// identity is what of a flow shapes its training state.
type identity struct {
	encoder    *encode.Config
	keyEncoder bool
	queue      bool
	queueSize  int
	queueDim   int
	loss       string
	optimizer  string
}

func flowIdentity(spec *pipeline.Spec) identity {
	var id identity
	for _, s := range spec.Stages {
		switch c := s.Config.(type) {
		case *encode.StageConfig:
			cfg := c.Config.WithDefaults()
			id.encoder, id.keyEncoder = &cfg, c.KeyEncoder
		case *queue.Config:
			id.queue, id.queueSize, id.queueDim = true, cmp.Or(c.Size, queue.DefaultSize), cmp.Or(c.Dim, queue.DefaultDim)
		case *loss.Config:
			id.loss = cmp.Or(c.Type, loss.TypeInfoNCE)
		case *optim.Config:
			id.optimizer = c.WithDefaults().Optimizer
		}
	}
	return id
}

// diff names the first difference between a and b, or "".
func (a identity) diff(b identity) string {
	switch {
	case (a.encoder == nil) != (b.encoder == nil) || a.encoder != nil && !reflect.DeepEqual(*a.encoder, *b.encoder):
		return fmt.Sprintf("its encoder (%s against %s)", describeEncoder(a.encoder), describeEncoder(b.encoder))
	case a.keyEncoder != b.keyEncoder:
		return fmt.Sprintf("its key encoder (%v against %v)", a.keyEncoder, b.keyEncoder)
	case a.queue != b.queue || a.queueSize != b.queueSize || a.queueDim != b.queueDim:
		return fmt.Sprintf("its queue (%s against %s)", describeQueue(a), describeQueue(b))
	case a.loss != b.loss:
		return fmt.Sprintf("its loss (%s against %s)", a.loss, b.loss)
	case a.optimizer != b.optimizer:
		return fmt.Sprintf("its optimizer (%s against %s)", a.optimizer, b.optimizer)
	}
	return ""
}

func describeEncoder(c *encode.Config) string {
	if c == nil {
		return "none"
	}
	return fmt.Sprintf("%+v", *c)
}

func describeQueue(id identity) string {
	if !id.queue {
		return "none"
	}
	return fmt.Sprintf("size %d, dim %d", id.queueSize, id.queueDim)
}
