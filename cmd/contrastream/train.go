package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/contrastream/contrastream/flows"
	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sinks"
)

// defaultFlow is what train runs with no --flow.
const defaultFlow = "moco"

func runTrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("train", stderr)
	flow := fs.String("flow", defaultFlow, "a prebuilt flow's `name` (see 'contrastream flows') or a YAML file")
	data := fs.String("data", "", "the dataset `SRC` (Parquet/Arrow file or glob, image folder, IDX images file, builtin:train); overrides the flow's source.path")
	out := fs.String("out", "", "the run `folder` for metrics and checkpoints (default runs/FLOW-TIME; with --resume, the checkpoint's run folder)")
	resume := fs.String("resume", "", "continue from the checkpoint `folder` written by an earlier run (its checkpoints then replace that folder)")
	initFrom := fs.String("init-from", "", "start a new run from the encoder weights of the checkpoint `folder` (step 0, new optimizer; any flow with the same encoder)")
	force := fs.Bool("force", false, "let --out name a folder that holds another run, and replace that run's metrics and checkpoint")
	var sets multiFlag
	fs.Var(&sets, "set", "override a field of the flow, `path=value` (e.g. epochs=2, stages.collate.batch_size=64); repeatable")
	maxSteps := fs.Int64("max-steps", 0, "stop training after `N` steps in all (a resumed run's included) and write the checkpoint; the schedules still span the flow's epochs, so --resume continues the run (0: no limit)")
	quiet := fs.Bool("q", false, "no progress display")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to `file` (read it with go tool pprof)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if *maxSteps < 0 {
		return fmt.Errorf("%w: --max-steps %d is negative", errUsage, *maxSteps)
	}
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	flowSet := false
	fs.Visit(func(f *flag.Flag) { flowSet = flowSet || f.Name == "flow" })
	if *resume != "" && *initFrom != "" {
		return fmt.Errorf("%w: --resume continues a run, --init-from starts a new one: give one of them", errUsage)
	}
	if *resume != "" && *force {
		return fmt.Errorf("%w: --force starts a new run over an old one; --resume continues one: give one of them", errUsage)
	}
	var ck, init *sinks.Checkpoint
	if *resume != "" {
		var err error
		if ck, err = sinks.ReadCheckpoint(*resume); err != nil {
			return err
		}
	}
	if *initFrom != "" {
		var err error
		if init, err = sinks.ReadCheckpoint(*initFrom); err != nil {
			return err
		}
	}
	if *data != "" {
		sets = append(multiFlag{"source.path=" + *data}, sets...)
	}
	var (
		spec *pipeline.Spec
		err  error
	)
	if ck != nil && !flowSet && ck.Info.Flow != "" {
		spec, err = pipeline.ParseSpec([]byte(flows.UpgradeRecordedFlow(ck.Info.Flow)), filepath.Join(*resume, sinks.InfoFile), nil, sets)
	} else {
		spec, err = flows.Load(*flow, sets)
	}
	if err != nil {
		return err
	}
	made := ""
	if *out == "" && ck == nil {
		if made, err = flows.NewRunDir("runs", spec.Name, time.Now()); err != nil {
			return err
		}
		*out = made
	}
	job, err := flows.Prepare(spec, pipeline.Options{}, flows.JobOptions{RunDir: *out, Resume: ck, ResumeFrom: *resume,
		InitFrom: init, Force: *force, MaxSteps: *maxSteps})
	if err != nil {
		if made != "" {
			os.Remove(made) // empty: nothing was written
		}
		return err
	}
	if *out == "" {
		*out = job.RunDir()
	}
	f := job.Flow
	var prog *sinks.Progress
	start := time.Now()
	if !*quiet {
		if job.Trains() {
			total := job.Plan.Steps()
			if *maxSteps > 0 {
				total = min(total, *maxSteps)
			}
			prog = (&sinks.Progress{Label: "train " + spec.Name, Unit: "steps", Total: total,
				Count: job.Steps, Extra: func() string { return stepNote(job) }}).Start(stderr)
		} else {
			prog = (&sinks.Progress{Label: "train " + spec.Name, Unit: "samples", Total: job.Plan.EpochLen * int64(spec.Epochs),
				Count: func() int64 { return f.Metrics()[0].Out }, Extra: func() string { return stageShare(f.Metrics()) }}).Start(stderr)
		}
	}
	err = job.Run(ctx)
	if prog != nil {
		prog.Done()
	}
	elapsed := time.Since(start)
	snaps := f.Metrics()
	if job.Trains() {
		fmt.Fprintf(stdout, "flow %s: %d steps in %s (%.0f samples/s)", sinks.Printable(spec.Name), job.Steps(), elapsed.Round(time.Millisecond),
			float64(snaps[0].Out)/elapsed.Seconds())
		if m := job.Last(); m != nil {
			fmt.Fprintf(stdout, "; last loss %.4f", m.Loss)
		}
		if e := job.LastEval(); e != nil {
			fmt.Fprintf(stdout, "; knn top-1 %.4f after epoch %d (k=%d, T=%g, %d queries; eval.jsonl)", e.KNNTop1, e.Epoch, e.K, e.T, e.NTest)
		}
		fmt.Fprintf(stdout, "\nrun folder: %s\n", sinks.Printable(*out))
		if dir := job.CheckpointDir(); dir != "" && (err == nil || errors.Is(err, context.Canceled)) && hasCheckpoint(dir) {
			fmt.Fprintf(stdout, "checkpoint: %s (continue with --resume %s)\n", sinks.Printable(dir), sinks.Printable(dir))
		}
	} else if err == nil {
		fmt.Fprintf(stdout, "flow %s: %d epoch(s) of %s samples in %s: %.0f samples/s (%.0f views/s)\n",
			sinks.Printable(spec.Name), spec.Epochs, sinks.Count(job.Plan.EpochLen), elapsed.Round(time.Millisecond),
			float64(snaps[0].Out)/elapsed.Seconds(), 2*float64(snaps[0].Out)/elapsed.Seconds())
	}
	if err != nil {
		return err
	}
	if n := f.Skips().Count(); n > 0 {
		fmt.Fprintf(stdout, "%d bad samples skipped, e.g.:\n", n)
		for _, e := range f.Skips().Examples() { // origins hold dataset paths
			fmt.Fprintf(stdout, "  %s\n", sinks.Printable(e))
		}
	}
	fmt.Fprintln(stdout)
	return pipeline.WriteMetrics(stdout, snaps)
}

// stepNote is the training progress line's note: epoch, loss, samples/s.
func stepNote(job *flows.Job) string {
	m := job.Last()
	if m == nil {
		return "starting"
	}
	note := fmt.Sprintf("epoch %d/%d  loss %.4f  lr %.4f  %.0f samples/s", m.Epoch+1, job.Plan.Epochs, m.Loss, m.LR, m.SamplesPerSec)
	if e := job.LastEval(); e != nil {
		note += fmt.Sprintf("  knn %.4f (epoch %d)", e.KNNTop1, e.Epoch)
	}
	return note
}

// stageShare is the progress line's note of the busiest stage.
func stageShare(snaps []pipeline.Snapshot) string {
	i := pipeline.Bottleneck(snaps)
	if i < 0 {
		return ""
	}
	return fmt.Sprintf("busiest: %s %.0f%%", snaps[i].Name, 100*snaps[i].BusyShare())
}

// startCPUProfile profiles the process into path until stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// hasCheckpoint reports whether dir (or, after a crash between two
// renames, dir.old) holds a checkpoint's state.json.
func hasCheckpoint(dir string) bool {
	for _, d := range []string{dir, dir + ".old"} {
		if _, err := os.Stat(filepath.Join(d, sinks.InfoFile)); err == nil {
			return true
		}
	}
	return false
}
