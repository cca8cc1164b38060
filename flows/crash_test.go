package flows_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/contrastream/contrastream/flows"
	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sinks"
)

// The crash test: a child process trains with a checkpoint after every
// step and is killed with SIGKILL at random moments, many of them inside
// a checkpoint write (slowed by CONTRASTREAM_TEST_CHECKPOINT_DELAY);
// after each kill the run folder must hold a loadable checkpoint no older
// than the last one seen, the next child resumes from it, and when a
// child finally finishes, the run folder holds the same model and state
// bytes, metrics and kNN records as a run that was never killed.

const (
	crashChildEnv   = "CONTRASTREAM_CRASH_CHILD" // the run folder a child trains in
	crashKills      = 50                         // kills at least, over all chains
	crashSteps      = 8 * stepsPerEpoch          // steps of the run
	crashChainKills = 15                         // kills at most in one chain
)

// crashSets is the flow the children train: 8 epochs of 5 steps, a
// checkpoint after every step, the kNN monitor every other epoch.
func crashSets() []string {
	return tinySets("moco", "epochs=8", "sinks.checkpoint.every=1", "sinks.knn.every=2",
		"sinks.knn.train={path: builtin:test, shards: 50}", "sinks.knn.test={path: builtin:test, shards: 100, shard: 1}")
}

// TestCrashChild is the child: it resumes from the run folder's checkpoint
// if one loads, and otherwise starts the run afresh (replacing what a
// child killed before its first checkpoint left).
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("run by TestCrashAnywhere")
	}
	spec, err := flows.Load("moco", crashSets())
	if err != nil {
		t.Fatal(err)
	}
	jo := flows.JobOptions{RunDir: dir, Force: true}
	ckDir := filepath.Join(dir, "checkpoint")
	if ck, err := sinks.ReadCheckpoint(ckDir); err == nil {
		if ck.Info.Step == crashSteps {
			return // killed on its way out
		}
		jo = flows.JobOptions{RunDir: dir, Resume: ck, ResumeFrom: ckDir}
	} else if !errors.Is(err, sinks.ErrNotCheckpoint) {
		t.Fatal(err)
	}
	job, err := flows.Prepare(spec, pipeline.Options{}, jo)
	if err != nil {
		t.Fatal(err)
	}
	if err := job.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// child starts a child training in dir.
func crashChild(t *testing.T, dir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, "CONTRASTREAM_TEST_CHECKPOINT_DELAY=2ms")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd
}

func TestCrashAnywhere(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	if runtime.GOOS == "windows" {
		t.Skip("no SIGKILL")
	}
	if raceEnabled {
		t.Skip("slow under -race; the README's test command runs it without")
	}
	// The run never killed, in a child like the others.
	whole := t.TempDir()
	start := time.Now()
	cmd := crashChild(t, whole)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("uninterrupted child: %v\n%s", err, cmd.Stdout)
	}
	span := time.Since(start)
	want := readRunFolder(t, whole)

	rng := rand.New(rand.NewPCG(7, 7))
	kills, inWrite, chains, lost := 0, 0, 0, 0
	for kills < crashKills {
		chains++
		dir := t.TempDir()
		last := int64(-1) // the step of the newest checkpoint seen
		for n := 0; ; n++ {
			before := leftovers(dir)
			cmd := crashChild(t, dir)
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			// Kill at a random moment of the first third of a whole run,
			// start-up included; after crashChainKills kills, let the
			// chain finish (on a slow machine a third of a run may not
			// reach the end).
			wait := time.Duration(rng.Int64N(int64(span / 3)))
			if n >= crashChainKills {
				wait = 10 * span
			}
			timer := time.NewTimer(wait)
			var err error
			killed := false
			select {
			case err = <-exited:
				timer.Stop()
			case <-timer.C:
				cmd.Process.Signal(syscall.SIGKILL)
				err = <-exited
				killed = true
			}
			if !killed {
				if err != nil {
					t.Fatalf("chain %d: child failed: %v\n%s", chains, err, cmd.Stdout)
				}
				break // the run is done
			}
			kills++
			if writing(dir, before) {
				inWrite++
			}
			ck, err := sinks.ReadCheckpoint(filepath.Join(dir, "checkpoint"))
			switch {
			case err == nil:
				if ck.Info.Step < last {
					t.Fatalf("kill %d: the checkpoint went back from step %d to %d", kills, last, ck.Info.Step)
				}
				last = ck.Info.Step
			case last >= 0:
				t.Fatalf("kill %d: the checkpoint of step %d is lost: %v", kills, last, err)
			case !errors.Is(err, sinks.ErrNotCheckpoint):
				t.Fatalf("kill %d: %v", kills, err)
			default:
				lost++ // killed before the first checkpoint: starts afresh
			}
		}
		got := readRunFolder(t, dir)
		got.compare(t, want, fmt.Sprintf("chain %d", chains))
	}
	t.Logf("%d kills in %d chains (%d inside a checkpoint write, %d before the first checkpoint); a whole run takes %v",
		kills, chains, inWrite, lost, span.Round(time.Millisecond))
	if inWrite == 0 {
		t.Errorf("no kill landed inside a checkpoint write")
	}
}

// leftovers lists what checkpoint writes left in dir: temporary folders
// and the old checkpoint.
func leftovers(dir string) map[string]bool {
	found := map[string]bool{}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".checkpoint.new-") || e.Name() == "checkpoint.old" {
			found[e.Name()] = true
		}
	}
	return found
}

// writing reports whether the child killed in dir was writing a
// checkpoint: a temporary folder or an old checkpoint that was not there
// before it started.
func writing(dir string, before map[string]bool) bool {
	for name := range leftovers(dir) {
		if !before[name] {
			return true
		}
	}
	return false
}

// runFolder is what a finished run leaves.
type runFolder struct {
	model, state []byte
	metrics      []pipeline.StepMetrics
	eval         []flows.EvalRecord
	step         int64
}

func readRunFolder(t *testing.T, dir string) runFolder {
	t.Helper()
	var r runFolder
	var err error
	if r.model, err = os.ReadFile(filepath.Join(dir, "checkpoint", sinks.ModelFile)); err != nil {
		t.Fatal(err)
	}
	if r.state, err = os.ReadFile(filepath.Join(dir, "checkpoint", sinks.StateFile)); err != nil {
		t.Fatal(err)
	}
	r.step = readCheckpoint(t, filepath.Join(dir, "checkpoint")).Info.Step
	r.metrics = readMetrics(t, filepath.Join(dir, "metrics.jsonl"))
	r.eval = readEval(t, filepath.Join(dir, "eval.jsonl"))
	return r
}

func (r runFolder) compare(t *testing.T, want runFolder, what string) {
	t.Helper()
	if r.step != want.step || !bytes.Equal(r.model, want.model) || !bytes.Equal(r.state, want.state) {
		t.Errorf("%s: ends at step %d with other weights or state than the run never killed (step %d)", what, r.step, want.step)
	}
	if len(r.metrics) != len(want.metrics) {
		t.Errorf("%s: %d metrics lines, want %d", what, len(r.metrics), len(want.metrics))
	}
	for i := range min(len(r.metrics), len(want.metrics)) {
		g, w := r.metrics[i], want.metrics[i]
		if g.Step != w.Step || g.Loss != w.Loss || g.LR != w.LR {
			t.Errorf("%s: metrics line %d: step %d loss %v, want step %d loss %v", what, i+1, g.Step, g.Loss, w.Step, w.Loss)
		}
	}
	if len(r.eval) != len(want.eval) {
		t.Errorf("%s: %d kNN records, want %d", what, len(r.eval), len(want.eval))
	}
	for i := range min(len(r.eval), len(want.eval)) {
		if r.eval[i].Step != want.eval[i].Step || r.eval[i].KNNTop1 != want.eval[i].KNNTop1 {
			t.Errorf("%s: kNN record %d: step %d top-1 %v, want step %d top-1 %v", what, i+1, r.eval[i].Step, r.eval[i].KNNTop1, want.eval[i].Step, want.eval[i].KNNTop1)
		}
	}
}
