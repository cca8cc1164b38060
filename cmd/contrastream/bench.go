package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"

	"github.com/contrastream/contrastream/flows"
	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/stages/encode"
)

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench", stderr)
	flow := fs.String("flow", defaultFlow, "a prebuilt training flow's `name` or a YAML file")
	data := fs.String("data", "", "the dataset `SRC`; overrides the flow's source.path")
	var sets multiFlag
	fs.Var(&sets, "set", "override a field of the flow, `path=value` (e.g. stages.encode.arch=resnet18); repeatable")
	steps := fs.Int("steps", 20, "measured training `steps`")
	warmup := fs.Int("warmup", 3, "training `steps` run first and not measured")
	mode := fs.String("mode", "both", "`step` (the training step alone, on a repeated batch), flow (the whole flow, data included) or both")
	asJSON := fs.Bool("json", false, "print one JSON object per mode instead of tables")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to `file`")
	memProfile := fs.String("memprofile", "", "write an allocation profile to `file` at the end (go tool pprof -sample_index=alloc_space)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	var modes []bool // StepOnly per run
	switch *mode {
	case "step":
		modes = []bool{true}
	case "flow":
		modes = []bool{false}
	case "both":
		modes = []bool{true, false}
	default:
		return fmt.Errorf("%w: --mode %q, want step, flow or both", errUsage, *mode)
	}
	if *steps < 1 || *warmup < 1 {
		return fmt.Errorf("%w: --steps and --warmup must be ≥ 1", errUsage)
	}
	if *data != "" {
		sets = append(multiFlag{"source.path=" + *data}, sets...)
	}
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	if *memProfile != "" {
		defer writeMemProfile(*memProfile, stderr)
	}
	for _, stepOnly := range modes {
		spec, err := flows.Load(*flow, sets)
		if err != nil {
			return err
		}
		r, err := flows.Bench(ctx, spec, flows.BenchOptions{Steps: *steps, Warmup: *warmup, StepOnly: stepOnly})
		if err != nil {
			return err
		}
		if *asJSON {
			if err := writeBenchJSON(stdout, r); err != nil {
				return err
			}
			continue
		}
		writeBench(stdout, r)
	}
	return nil
}

func benchMode(r flows.BenchResult) string {
	if r.StepOnly {
		return "step"
	}
	return "flow"
}

func writeBench(w io.Writer, r flows.BenchResult) {
	lo, hi := r.Spread()
	med := r.MedianStep()
	fmt.Fprintf(w, "bench %s (%s): %s, batch %d, %d steps after %s; %s BLAS, GOMAXPROCS %d; %d shards of %d images on %d workers\n",
		r.Flow, benchMode(r), r.Arch, r.Batch, len(r.StepSeconds), "warm-up", encode.BLAS, runtime.GOMAXPROCS(0), r.Shards, r.ShardSize, r.Workers)
	fmt.Fprintf(w, "  step time        %.1f ms median (%.1f–%.1f)\n", 1000*med, 1000*lo, 1000*hi)
	fmt.Fprintf(w, "  step             %.0f samples/s, %.0f encoder images/s\n", r.StepSamplesPerSec(), float64(r.ImagesPerSample)*r.StepSamplesPerSec())
	fmt.Fprintf(w, "  %-16s %.0f samples/s, %.0f encoder images/s (wall %.2f s)\n", benchMode(r)+" throughput", r.FlowSamplesPerSec(),
		float64(r.ImagesPerSample)*r.FlowSamplesPerSec(), r.Wall.Seconds())
	fmt.Fprintf(w, "  allocated        %.2f MB per step\n", r.AllocPerStep()/1e6)
	fmt.Fprintf(w, "  peak RSS         %.0f MB (the process so far)\n", float64(r.PeakRSS)/(1<<20))
	if !r.StepOnly {
		fmt.Fprintln(w)
		pipeline.WriteMetrics(w, r.Stages)
	}
	fmt.Fprintln(w)
}

func writeBenchJSON(w io.Writer, r flows.BenchResult) error {
	lo, hi := r.Spread()
	type stage struct {
		Name     string  `json:"name"`
		Workers  int     `json:"workers"`
		BusyS    float64 `json:"busy_s"`
		WaitInS  float64 `json:"wait_in_s"`
		WaitOutS float64 `json:"wait_out_s"`
		WallS    float64 `json:"wall_s"`
	}
	var st []stage
	for _, s := range r.Stages {
		st = append(st, stage{Name: s.Name, Workers: s.Workers, BusyS: s.Busy.Seconds(), WaitInS: s.WaitIn.Seconds(),
			WaitOutS: s.WaitOut.Seconds(), WallS: s.Wall.Seconds()})
	}
	return json.NewEncoder(w).Encode(map[string]any{
		"flow": r.Flow, "mode": benchMode(r), "arch": r.Arch, "batch": r.Batch, "steps": len(r.StepSeconds),
		"blas": encode.BLAS, "gomaxprocs": runtime.GOMAXPROCS(0), "shards": r.Shards, "shard_size": r.ShardSize, "workers": r.Workers,
		"median_step_s": r.MedianStep(), "min_step_s": lo, "max_step_s": hi,
		"step_samples_per_s": r.StepSamplesPerSec(), "step_encoder_img_per_s": float64(r.ImagesPerSample) * r.StepSamplesPerSec(),
		"flow_samples_per_s": r.FlowSamplesPerSec(), "wall_s": r.Wall.Seconds(),
		"alloc_mb_per_step": r.AllocPerStep() / 1e6, "peak_rss_mb": float64(r.PeakRSS) / (1 << 20), "stages": st,
	})
}

func writeMemProfile(path string, stderr io.Writer) {
	f, err := os.Create(path)
	if err == nil {
		err = errors.Join(pprof.Lookup("allocs").WriteTo(f, 0), f.Close())
	}
	if err != nil {
		fmt.Fprintf(stderr, "contrastream bench: memory profile: %v\n", err)
	}
}
