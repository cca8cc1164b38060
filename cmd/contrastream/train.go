package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"time"

	"github.com/contrastream/contrastream/flows"
	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sinks"
)

// defaultFlow is what train runs with no --flow. Until the training stages
// land it is the data half of a training flow.
const defaultFlow = "data"

func runTrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("train", stderr)
	flow := fs.String("flow", defaultFlow, "a prebuilt flow's `name` (see 'contrastream flows') or a YAML file")
	data := fs.String("data", "", "the dataset `SRC` (Parquet/Arrow file or glob, image folder, IDX images file, builtin:train); overrides the flow's source.path")
	var sets multiFlag
	fs.Var(&sets, "set", "override a field of the flow, `path=value` (e.g. epochs=2, stages.collate.batch_size=64); repeatable")
	quiet := fs.Bool("q", false, "no progress display")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to `file` (read it with go tool pprof)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if *data != "" {
		sets = append(multiFlag{"source.path=" + *data}, sets...)
	}
	spec, err := flows.Load(*flow, sets)
	if err != nil {
		return err
	}
	f, err := flows.Build(spec, pipeline.Options{})
	if err != nil {
		return err
	}
	plan, err := flows.PlanOf(spec)
	if err != nil {
		return err
	}
	perEpoch := plan.EpochLen
	var prog *sinks.Progress
	start := time.Now()
	if !*quiet {
		prog = (&sinks.Progress{Label: "train " + spec.Name, Unit: "samples", Total: perEpoch * int64(spec.Epochs),
			Extra: func() string { return stageShare(f.Metrics()) }}).Start(stderr)
		prog.Count = func() int64 { return f.Metrics()[0].Out }
	}
	err = f.Run(ctx)
	if prog != nil {
		prog.Done()
	}
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	snaps := f.Metrics()
	fmt.Fprintf(stdout, "flow %s: %d epoch(s) of %s samples in %s: %.0f samples/s (%.0f views/s)\n",
		spec.Name, spec.Epochs, sinks.Count(perEpoch), elapsed.Round(time.Millisecond),
		float64(snaps[0].Out)/elapsed.Seconds(), 2*float64(snaps[0].Out)/elapsed.Seconds())
	if n := f.Skips().Count(); n > 0 {
		fmt.Fprintf(stdout, "%d bad samples skipped, e.g.:\n", n)
		for _, e := range f.Skips().Examples() {
			fmt.Fprintf(stdout, "  %s\n", e)
		}
	}
	fmt.Fprintln(stdout)
	return pipeline.WriteMetrics(stdout, snaps)
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
