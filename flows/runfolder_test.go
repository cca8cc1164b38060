package flows_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/contrastream/contrastream/flows"
	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sinks"
)

// userFiles writes files of a user's own into dir and returns a check
// that they are all still there, unchanged.
func userFiles(t *testing.T, dir string) func() {
	t.Helper()
	files := map[string]string{"notes.txt": "mine", "src/main.go": "package main", "data/x.bin": "\x00\x01"}
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return func() {
		t.Helper()
		for name, text := range files {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil || string(b) != text {
				t.Errorf("the user's %s: %q, %v; want %q", name, b, err, text)
			}
		}
	}
}

// TestRunPathsStayInsideTheRunFolder: a checkpoint folder or a file that
// names the run folder itself, leaves it, or lies where a checkpoint
// write removes things is refused before anything is written, and the
// user's files in the folder stay.
func TestRunPathsStayInsideTheRunFolder(t *testing.T) {
	for _, tc := range []struct {
		name string
		sets []string
		want []string
	}{
		{"checkpoint dir is the run folder", []string{"sinks.checkpoint.dir=."}, []string{"sinks", "dir", "inside the run folder"}},
		{"checkpoint dir x/..", []string{"sinks.checkpoint.dir=x/.."}, []string{"dir", "inside the run folder"}},
		{"checkpoint dir above", []string{"sinks.checkpoint.dir=../elsewhere"}, []string{"dir", "inside the run folder"}},
		{"metrics file is the run folder", []string{"sinks.metrics.file=."}, []string{"file", "inside the run folder"}},
		{"metrics file in the checkpoint folder", []string{"sinks.metrics.file=checkpoint/metrics.jsonl"}, []string{"checkpoint", "would remove it"}},
		{"metrics file in checkpoint.old", []string{"sinks.metrics.file=checkpoint.old/m.jsonl"}, []string{"would remove it"}},
		{"eval file is the metrics file", []string{"sinks.knn.file=metrics.jsonl", "sinks.knn.every=1"}, []string{"two sinks write"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			intact := userFiles(t, dir)
			err := func() error {
				spec, err := flows.Load("moco", tinySets("moco", tc.sets...))
				if err != nil {
					return err
				}
				job, err := flows.Prepare(spec, pipeline.Options{}, flows.JobOptions{RunDir: dir, MaxSteps: 2})
				if err != nil {
					return err
				}
				return job.Run(context.Background())
			}()
			if err == nil {
				t.Fatal("the flow ran")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			intact()
			entries, _ := os.ReadDir(dir)
			if len(entries) != 3 {
				t.Errorf("the run folder holds %d entries, want the user's 3 alone", len(entries))
			}
		})
	}
}

// TestRunPathsThroughSymlinks: a metrics file or checkpoint folder that is
// a symbolic link out of the run folder is refused.
func TestRunPathsThroughSymlinks(t *testing.T) {
	for _, tc := range []struct{ name, link string }{
		{"metrics file", "metrics.jsonl"},
		{"checkpoint folder", "checkpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, outside := t.TempDir(), t.TempDir()
			if err := os.Symlink(filepath.Join(outside, "target"), filepath.Join(dir, tc.link)); err != nil {
				t.Skip(err)
			}
			spec, err := flows.Load("moco", tinySets("moco"))
			if err != nil {
				t.Fatal(err)
			}
			_, err = flows.Prepare(spec, pipeline.Options{}, flows.JobOptions{RunDir: dir, Force: true})
			if err == nil || !strings.Contains(err.Error(), "outside the run folder") {
				t.Fatalf("Prepare = %v, want a refusal naming the link", err)
			}
			if entries, _ := os.ReadDir(outside); len(entries) != 0 {
				t.Errorf("%d entries written outside the run folder", len(entries))
			}
		})
	}
}

// TestRunFolderIsNotReused: a second run into a folder that holds a run
// is refused whatever its flow; Force replaces that run's files (and
// only those); a resume goes on in place.
func TestRunFolderIsNotReused(t *testing.T) {
	dir := t.TempDir()
	intact := userFiles(t, dir)
	if err := prepare(t, "moco", tinySets("moco"), flows.JobOptions{RunDir: dir, MaxSteps: 2}).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	first := readCheckpoint(t, filepath.Join(dir, "checkpoint"))
	for _, flow := range []string{"moco", "simclr"} {
		spec, err := flows.Load(flow, tinySets(flow))
		if err != nil {
			t.Fatal(err)
		}
		_, err = flows.Prepare(spec, pipeline.Options{}, flows.JobOptions{RunDir: dir})
		if !errors.Is(err, flows.ErrRunExists) || !strings.Contains(err.Error(), "--force") || !strings.Contains(err.Error(), "--resume") {
			t.Errorf("%s into a folder with a run: %v, want ErrRunExists with what to do", flow, err)
		}
	}
	if ck := readCheckpoint(t, filepath.Join(dir, "checkpoint")); ck.Info.Written != first.Info.Written {
		t.Error("a refused run touched the checkpoint")
	}
	if ms := readMetrics(t, filepath.Join(dir, "metrics.jsonl")); len(ms) != 2 {
		t.Errorf("%d metrics lines after a refused run, want 2", len(ms))
	}

	// --force: a new simclr run replaces the moco run's files.
	if err := prepare(t, "simclr", tinySets("simclr"), flows.JobOptions{RunDir: dir, MaxSteps: 1, Force: true}).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	ck := readCheckpoint(t, filepath.Join(dir, "checkpoint"))
	if ck.Info.Step != 1 || ck.State["queue.ptr"].F32 != nil {
		t.Errorf("after --force the checkpoint is at step %d with state %v, want simclr's step 1", ck.Info.Step, len(ck.State))
	}
	checkSteps(t, readMetrics(t, filepath.Join(dir, "metrics.jsonl")), 1)
	intact()
}

// TestRunFolderLock: while one job runs in a folder, another is refused.
func TestRunFolderLock(t *testing.T) {
	dir := t.TempDir()
	sets := tinySets("moco", "epochs=20")
	a := prepare(t, "moco", sets, flows.JobOptions{RunDir: dir})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	for a.Steps() < 1 {
		time.Sleep(time.Millisecond)
	}
	b := prepare(t, "moco", sets, flows.JobOptions{RunDir: dir, Force: true})
	err := b.Run(context.Background())
	cancel()
	if aerr := <-done; !errors.Is(aerr, context.Canceled) {
		t.Errorf("first run: %v", aerr)
	}
	if err == nil || !strings.Contains(err.Error(), "in use by another") {
		t.Fatalf("second run in the same folder: %v, want a refusal", err)
	}
	ms := readMetrics(t, filepath.Join(dir, "metrics.jsonl"))
	checkSteps(t, ms, len(ms))
}

// TestNewRunDir: runs started in the same second get folders of their own.
func TestNewRunDir(t *testing.T) {
	parent := t.TempDir()
	at := time.Date(2026, 12, 7, 18, 0, 0, 0, time.UTC)
	seen := map[string]bool{}
	for range 3 {
		d, err := flows.NewRunDir(parent, "moco", at)
		if err != nil {
			t.Fatal(err)
		}
		if seen[d] {
			t.Fatalf("%s handed out twice", d)
		}
		seen[d] = true
		if entries, err := os.ReadDir(d); err != nil || len(entries) != 0 {
			t.Errorf("%s: %d entries, %v; want a new empty folder", d, len(entries), err)
		}
	}
	if !seen[filepath.Join(parent, "moco-20261207-180000")] || !seen[filepath.Join(parent, "moco-20261207-180000-3")] {
		t.Errorf("folders %v", seen)
	}
	// A flow's name is not a path.
	d, err := flows.NewRunDir(parent, "../../x", at)
	if err != nil || filepath.Dir(d) != parent {
		t.Errorf("NewRunDir(%q, \"../../x\") = %q, %v; want a folder in %s", parent, d, err, parent)
	}
}

// TestNonFiniteWeightsAreNeverSaved: with a huge learning rate the
// weights blow up to Inf before the loss does; the run stops naming the
// step and the tensor, and the checkpoint kept is the last finite one.
func TestNonFiniteWeightsAreNeverSaved(t *testing.T) {
	dir := t.TempDir()
	job := prepare(t, "moco", tinySets("moco", "stages.optimize.lr=1e6", "sinks.checkpoint.every=1", "epochs=4"), flows.JobOptions{RunDir: dir})
	err := job.Run(context.Background())
	if err == nil {
		t.Fatal("lr 1e6 trained 4 epochs without diverging")
	}
	good := job.Steps()
	// The running variances reach +Inf while the loss is still finite.
	for _, w := range []string{fmt.Sprintf("step %d:", good), "running_var", "+Inf", "the weights diverged"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	ck := readCheckpoint(t, filepath.Join(dir, "checkpoint"))
	if ck.Info.Step != good {
		t.Errorf("checkpoint at step %d, want the last good step %d", ck.Info.Step, good)
	}
	checkFinite(t, "model", ck.Model)
	checkFinite(t, "state", ck.State)
}

// TestCheckpointsOnATimer: with the timer on (seconds), checkpoints come
// during the run, not only at its end: a run that fails later leaves one.
func TestCheckpointsOnATimer(t *testing.T) {
	dir := t.TempDir()
	job := prepare(t, "simclr", tinySets("simclr", "stages.optimize.lr=1e30", "epochs=2", "sinks.checkpoint.seconds=1e-9"), flows.JobOptions{RunDir: dir})
	if err := job.Run(context.Background()); err == nil {
		t.Fatal("training with lr 1e30 succeeded")
	}
	ck := readCheckpoint(t, filepath.Join(dir, "checkpoint"))
	if ck.Info.Step < 1 || ck.Info.Step > job.Steps() {
		t.Errorf("checkpoint at step %d of %d good steps", ck.Info.Step, job.Steps())
	}
	// The default is the timer, at DefaultCheckpointSeconds.
	spec, err := flows.Load("moco", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range spec.Sinks {
		if c, ok := s.Config.(*flows.CheckpointConfig); ok && (c.Every != 0 || c.Seconds != nil) {
			t.Errorf("the moco flow's checkpoint sink sets every %d, seconds %v: the default is the timer", c.Every, c.Seconds)
		}
	}
}

// TestResumeKeepsEachStepOnce: whatever a crash left in metrics.jsonl
// and eval.jsonl (lines of steps past the checkpoint, a half-written
// line, a line the checkpoint carries because the process ended before
// writing it), the resumed run leaves each step exactly once, as one run
// would, and evaluates an epoch whose kNN record was lost.
func TestResumeKeepsEachStepOnce(t *testing.T) {
	sets := tinySets("moco", "epochs=3", "sinks.knn.every=1", "sinks.knn.train.path=builtin:test", "sinks.knn.train.shards=50",
		"sinks.knn.test.path=builtin:test", "sinks.knn.test.shards=100", "sinks.knn.test.shard=1")
	whole := t.TempDir()
	if err := prepare(t, "moco", sets, flows.JobOptions{RunDir: whole}).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := readMetrics(t, filepath.Join(whole, "metrics.jsonl"))
	wantEval := readEval(t, filepath.Join(whole, "eval.jsonl"))
	if len(wantEval) != 3 {
		t.Fatalf("%d kNN records in one go, want 3", len(wantEval))
	}

	for _, tc := range []struct {
		name  string
		steps int64 // where the crashed run's checkpoint is
		crash func(t *testing.T, dir string, ck *sinks.Checkpoint)
	}{
		{"lines past the checkpoint and a cut one", 7, func(t *testing.T, dir string, ck *sinks.Checkpoint) {
			appendLines(t, filepath.Join(dir, "metrics.jsonl"), want[7:9], `{"step":9,"epo`)
			appendLines(t, filepath.Join(dir, "eval.jsonl"), wantEval[1:2], "")
		}},
		{"lines the checkpoint carries", 4, func(t *testing.T, dir string, ck *sinks.Checkpoint) {
			path := filepath.Join(dir, "metrics.jsonl")
			ms := readMetrics(t, path)
			if err := os.WriteFile(path, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			appendLines(t, path, ms[:2], "")
			carry, _ := json.Marshal(ms[2:4])
			ck.Info.Extra["pending_metrics"] = string(carry)
			if err := sinks.WriteCheckpoint(filepath.Join(dir, "checkpoint"), *ck); err != nil {
				t.Fatal(err)
			}
		}},
		{"an epoch's kNN record lost", 5, func(t *testing.T, dir string, ck *sinks.Checkpoint) {
			if err := os.WriteFile(filepath.Join(dir, "eval.jsonl"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := prepare(t, "moco", sets, flows.JobOptions{RunDir: dir, MaxSteps: tc.steps}).Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			ck := readCheckpoint(t, filepath.Join(dir, "checkpoint"))
			tc.crash(t, dir, ck)
			ck = readCheckpoint(t, filepath.Join(dir, "checkpoint"))
			if err := prepare(t, "moco", sets, flows.JobOptions{RunDir: dir, Resume: ck}).Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := readMetrics(t, filepath.Join(dir, "metrics.jsonl"))
			checkSteps(t, got, len(want))
			for i := range min(len(got), len(want)) {
				if got[i].Loss != want[i].Loss {
					t.Errorf("step %d: loss %v, in one go %v", i, got[i].Loss, want[i].Loss)
				}
			}
			ev := readEval(t, filepath.Join(dir, "eval.jsonl"))
			if len(ev) != len(wantEval) {
				t.Fatalf("%d kNN records, want %d: %+v", len(ev), len(wantEval), ev)
			}
			for i := range ev {
				if ev[i].Step != wantEval[i].Step || ev[i].KNNTop1 != wantEval[i].KNNTop1 {
					t.Errorf("kNN record %d: step %d top-1 %v, in one go step %d top-1 %v", i, ev[i].Step, ev[i].KNNTop1, wantEval[i].Step, wantEval[i].KNNTop1)
				}
			}
			var sum sinks.MetricsSummary
			b, _ := os.ReadFile(filepath.Join(dir, "metrics.summary.json"))
			if err := json.Unmarshal(b, &sum); err != nil || sum.Steps != int64(len(want)) || sum.FirstLoss != want[0].Loss {
				t.Errorf("summary %+v (%v): want %d steps from loss %v", sum, err, len(want), want[0].Loss)
			}
		})
	}
}

func readEval(t *testing.T, path string) []flows.EvalRecord {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var recs []flows.EvalRecord
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		var r flows.EvalRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%s: %q: %v", path, line, err)
		}
		recs = append(recs, r)
	}
	return recs
}

// appendLines appends recs as JSON lines to path, then partial (no
// newline).
func appendLines[T any](t *testing.T, path string, recs []T, partial string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, r := range recs {
		b, _ := json.Marshal(r)
		f.Write(append(b, '\n'))
	}
	f.WriteString(partial)
}

// TestResumeRefusesAnotherFlow: a moco checkpoint does not resume under
// simclr (which would drop its queue and key encoder), nor a simclr one
// under moco; InitFrom starts the other flow from its weights instead.
func TestResumeRefusesAnotherFlow(t *testing.T) {
	dirs := map[string]string{}
	for _, flow := range []string{"moco", "simclr"} {
		dirs[flow] = t.TempDir()
		if err := prepare(t, flow, tinySets(flow), flows.JobOptions{RunDir: dirs[flow], MaxSteps: 2}).Run(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ ckpt, flow, want string }{
		{"moco", "simclr", "queue"},
		{"simclr", "moco", "simclr"},
		{"moco", "supcon", "queue"},
	} {
		t.Run(tc.ckpt+" under "+tc.flow, func(t *testing.T) {
			ck := readCheckpoint(t, filepath.Join(dirs[tc.ckpt], "checkpoint"))
			spec, err := flows.Load(tc.flow, tinySets(tc.flow))
			if err != nil {
				t.Fatal(err)
			}
			_, err = flows.Prepare(spec, pipeline.Options{}, flows.JobOptions{RunDir: dirs[tc.ckpt], Resume: ck})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "--init-from") {
				t.Fatalf("Prepare = %v, want a refusal naming %q and --init-from", err, tc.want)
			}
			dir := t.TempDir()
			job, err := flows.Prepare(spec, pipeline.Options{}, flows.JobOptions{RunDir: dir, InitFrom: ck, MaxSteps: 1})
			if err != nil {
				t.Fatal(err)
			}
			if job.Steps() != 0 {
				t.Errorf("a run from a checkpoint's weights starts at step %d", job.Steps())
			}
			if err := job.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := readCheckpoint(t, filepath.Join(dir, "checkpoint"))
			if got.Info.Step != 1 {
				t.Errorf("step %d", got.Info.Step)
			}
		})
	}
}

// TestResumeFindsItsRunFolder: the run folder of a checkpoint in a nested
// dir (sinks.checkpoint.dir=ck/latest), or named ".", is the one above the
// flow's checkpoint dir; a resume writing elsewhere is refused.
func TestResumeFindsItsRunFolder(t *testing.T) {
	sets := tinySets("moco", "epochs=2", "sinks.checkpoint.dir=ck/latest")
	run := t.TempDir()
	ckDir := filepath.Join(run, "ck", "latest")
	if err := prepare(t, "moco", sets, flows.JobOptions{RunDir: run, MaxSteps: 3}).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	spec, err := flows.Load("moco", sets)
	if err != nil {
		t.Fatal(err)
	}
	ck := readCheckpoint(t, ckDir)
	if _, err := flows.Prepare(spec, pipeline.Options{}, flows.JobOptions{RunDir: t.TempDir(), Resume: ck, ResumeFrom: ckDir}); err == nil || !strings.Contains(err.Error(), "--init-from") {
		t.Errorf("a resume into another folder: %v, want a refusal", err)
	}
	// --resume . from inside the checkpoint folder.
	wd, _ := os.Getwd()
	if err := os.Chdir(ckDir); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	job, err := flows.Prepare(spec, pipeline.Options{}, flows.JobOptions{Resume: ck, ResumeFrom: ".", MaxSteps: 6})
	if err != nil {
		t.Fatal(err)
	}
	if err := job.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	os.Chdir(wd)
	if got := readCheckpoint(t, ckDir); got.Info.Step != 6 {
		t.Errorf("checkpoint at step %d, want 6", got.Info.Step)
	}
	checkSteps(t, readMetrics(t, filepath.Join(run, "metrics.jsonl")), 6)
	for _, stray := range []string{filepath.Join(run, "ck", "metrics.jsonl"), filepath.Join(ckDir, "metrics.jsonl")} {
		if _, err := os.Stat(stray); err == nil {
			t.Errorf("the resume wrote %s", stray)
		}
	}
}

// TestInterruptDuringKNN: Ctrl-C while the kNN monitor evaluates an
// epoch's end leaves the checkpoint of that epoch's end (a later one
// would lose the evaluation's weights for good); the resume evaluates it
// and each step and evaluation is logged once.
func TestInterruptDuringKNN(t *testing.T) {
	// The whole test split as queries: an evaluation takes many steps.
	sets := tinySets("moco", "epochs=2", "sinks.checkpoint.every=1", "sinks.knn.every=1",
		"sinks.knn.train={path: builtin:train, shards: 8}", "sinks.knn.test={path: builtin:test, shards: 2}")
	dir := t.TempDir()
	job := prepare(t, "moco", sets, flows.JobOptions{RunDir: dir})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for job.Steps() < stepsPerEpoch+1 && ctx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	err := job.Run(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want an interruption", err)
	}
	if !strings.Contains(err.Error(), "kNN evaluation") {
		t.Skipf("the evaluation ended before the interruption: %v", err)
	}
	ck := readCheckpoint(t, filepath.Join(dir, "checkpoint"))
	if ck.Info.Step != stepsPerEpoch {
		t.Fatalf("checkpoint at step %d, want the epoch's end %d", ck.Info.Step, stepsPerEpoch)
	}
	if err := prepare(t, "moco", sets, flows.JobOptions{RunDir: dir, Resume: ck}).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkSteps(t, readMetrics(t, filepath.Join(dir, "metrics.jsonl")), 2*stepsPerEpoch)
	ev := readEval(t, filepath.Join(dir, "eval.jsonl"))
	if len(ev) != 2 || ev[0].Step != stepsPerEpoch || ev[1].Step != 2*stepsPerEpoch {
		t.Errorf("kNN records %+v, want one per epoch", ev)
	}
}

// TestRunFolderOfAnotherShape: run.json marks the folder whatever the
// sinks' file names, and --force removes the old run's files by it.
func TestRunFolderOfAnotherShape(t *testing.T) {
	dir := t.TempDir()
	intact := userFiles(t, dir)
	if err := prepare(t, "moco", tinySets("moco", "sinks.checkpoint.dir=ck", "sinks.metrics.file=log.jsonl"), flows.JobOptions{RunDir: dir, MaxSteps: 1}).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	spec, err := flows.Load("moco", tinySets("moco"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = flows.Prepare(spec, pipeline.Options{}, flows.JobOptions{RunDir: dir})
	if !errors.Is(err, flows.ErrRunExists) || !strings.Contains(err.Error(), "--resume "+filepath.Join(dir, "ck")) {
		t.Fatalf("a run with other file names: %v, want ErrRunExists naming its checkpoint", err)
	}
	if err := prepare(t, "moco", tinySets("moco"), flows.JobOptions{RunDir: dir, MaxSteps: 1, Force: true}).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{"ck", "log.jsonl", "log.summary.json"} {
		if _, err := os.Stat(filepath.Join(dir, gone)); err == nil {
			t.Errorf("--force left the old run's %s", gone)
		}
	}
	var rec struct {
		Flow  string
		Files []string
	}
	b, _ := os.ReadFile(filepath.Join(dir, "run.json"))
	if err := json.Unmarshal(b, &rec); err != nil || rec.Flow != "moco" || len(rec.Files) == 0 {
		t.Errorf("run.json %s: %v", b, err)
	}
	intact()
}
