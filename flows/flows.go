package flows

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sinks"
	"github.com/contrastream/contrastream/stages/encode"
)

//go:embed *.yaml
var prebuilt embed.FS

// Names lists the prebuilt flows.
func Names() []string {
	entries, _ := fs.ReadDir(prebuilt, ".")
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	slices.Sort(names)
	return names
}

// YAML returns a prebuilt flow's spec as written.
func YAML(name string) ([]byte, error) {
	b, err := prebuilt.ReadFile(name + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("no prebuilt flow %q (have %s)", name, strings.Join(Names(), ", "))
	}
	return b, nil
}

// Load reads a flow spec: a prebuilt flow's name, or the path of a YAML
// file (anything with a '/' or ending in .yaml or .yml) of at most
// pipeline.MaxSpecBytes. overrides are "path=value" strings (the CLI's
// --set) applied before validation. The spec is checked against
// pipeline.DefaultRegistry, where this package registers its kinds.
func Load(nameOrFile string, overrides []string) (*pipeline.Spec, error) {
	var (
		data []byte
		err  error
		file = nameOrFile
	)
	if strings.ContainsRune(nameOrFile, '/') || strings.HasSuffix(nameOrFile, ".yaml") || strings.HasSuffix(nameOrFile, ".yml") {
		data, err = pipeline.ReadSpecFile(nameOrFile)
	} else {
		data, err = YAML(nameOrFile)
		file = path.Join("flows", nameOrFile+".yaml")
	}
	if err != nil {
		return nil, err
	}
	return pipeline.ParseSpec(data, file, nil, overrides)
}

// Build makes a runnable flow of a validated spec that needs no run
// folder (see Prepare): its stages in order and, when the spec has several
// sinks, one sink stage that hands every element to each of them (see
// pipeline.Tee).
func Build(spec *pipeline.Spec, opts pipeline.Options) (*pipeline.Flow, error) {
	j, err := Prepare(spec, opts, JobOptions{})
	if err != nil {
		return nil, err
	}
	return j.Flow, nil
}

// JobOptions says where a job writes and whether it resumes.
type JobOptions struct {
	// RunDir is the folder of the run's outputs (metrics, checkpoints);
	// "" writes none.
	RunDir string
	// Resume, when set, is a checkpoint to continue from: the weights,
	// the optimizer, the key encoder and the queue are restored, and the
	// data continue at the epoch and position where it stopped.
	Resume *sinks.Checkpoint
	// ResumeFrom is the folder Resume was read from. The run goes on in
	// the run folder it belongs to (the folder above the flow's checkpoint
	// dir, or its parent), and its checkpoints replace that folder: a
	// resume writes nowhere else. RunDir may be left out; a RunDir that
	// names another folder is an error.
	ResumeFrom string
	// InitFrom, when set, starts a new run (step 0, a fresh optimizer and
	// queue) from this checkpoint's encoder weights: the way to go on with
	// another flow's weights. It excludes Resume.
	InitFrom *sinks.Checkpoint
	// Force lets a new run (not a resume) take a run folder that holds
	// another run: the files that run's run.json names and its checkpoint
	// are removed when the job starts, nothing else. Without it, Prepare
	// refuses such a folder (ErrRunExists).
	Force bool
	// MaxSteps, when > 0, ends training once that many steps are taken in
	// all (a resumed checkpoint's included), as if the flow had ended
	// there: Run writes the checkpoint and returns nil. The learning-rate
	// and momentum schedules still span the flow's epochs, so a later
	// resume continues the same run.
	MaxSteps int64

	// onStep, when set, sees every step's metrics as they pass on to the
	// sinks (Bench times the steps with it).
	onStep func(pipeline.StepMetrics)
}

// Job is a flow ready to run, with what its stages share.
type Job struct {
	Spec *pipeline.Spec
	Flow *pipeline.Flow
	Plan Plan
	t    *parts
	jo   JobOptions
	run  *runFiles
	last atomic.Pointer[pipeline.StepMetrics]

	onStep func(pipeline.StepMetrics)
}

// Prepare plans spec (PlanOf), builds its stages with what they share (the
// plan, the run folder, the checkpoint to resume from) and returns the job.
func Prepare(spec *pipeline.Spec, opts pipeline.Options, jo JobOptions) (*Job, error) {
	plan, err := PlanOf(spec)
	if err != nil {
		return nil, err
	}
	env := spec.Env()
	t := &parts{plan: plan, spec: spec, seed: env.Seed}
	if jo.Resume != nil && jo.InitFrom != nil {
		return nil, errors.New("resume or start from a checkpoint's weights, not both")
	}
	rf := &runFiles{dir: jo.RunDir}
	if jo.Resume != nil && jo.ResumeFrom != "" {
		from, run, err := resumeRunDir(spec, jo.ResumeFrom)
		if err != nil {
			return nil, err
		}
		if rf.dir != "" && !sameFolder(rf.dir, run) {
			return nil, fmt.Errorf("resume: the checkpoint %s is of the run folder %s, and a resume writes there, not to %s: leave out the run folder (--out), or start a new run there from its weights (--init-from)",
				jo.ResumeFrom, run, rf.dir)
		}
		rf.dir, rf.ckptAt = run, from
	}
	t.run = rf
	if jo.MaxSteps < 0 {
		return nil, fmt.Errorf("max steps %d is negative", jo.MaxSteps)
	}
	var done int64
	if jo.Resume != nil {
		done = jo.Resume.Info.Step
		if jo.MaxSteps > 0 && done >= jo.MaxSteps {
			return nil, fmt.Errorf("resume: the checkpoint is at step %d, and training stops at step %d: raise max steps to train on", done, jo.MaxSteps)
		}
		if jo.Resume.Info.Seed != spec.Seed {
			return nil, fmt.Errorf("resume: the checkpoint was made with seed %d, the flow has seed %d", jo.Resume.Info.Seed, spec.Seed)
		}
		if total := plan.Steps(); jo.Resume.Info.Step >= total {
			return nil, fmt.Errorf("resume: the checkpoint is at step %d of %d: training is done (raise epochs to train on)", jo.Resume.Info.Step, total)
		}
		if err := checkSameFlow(spec, jo.Resume); err != nil {
			return nil, err
		}
		t.resume = jo.Resume
	}
	t.init = jo.InitFrom
	t.control = newControl(jo.MaxSteps, done)
	reg, err := pipeline.DefaultRegistry.With(flowKinds(t)...)
	if err != nil {
		return nil, err
	}
	stages, err := spec.Build(reg, env)
	if err != nil {
		t.close()
		return nil, err
	}
	if t.encoder != nil && t.opt == nil {
		t.close()
		return nil, fmt.Errorf("flow %q: an encode stage needs an optimize stage after it (the encoder runs the next batch once the optimizer has stepped)", spec.Name)
	}
	if err := rf.check(); err != nil {
		t.close()
		return nil, err
	}
	if err := checkFreshRun(rf, jo); err != nil {
		t.close()
		return nil, err
	}
	opts.MaxBadSamples = spec.MaxBadSamples
	f := pipeline.New(opts)
	j := &Job{Spec: spec, Flow: f, Plan: plan, t: t, jo: jo, run: rf, onStep: jo.onStep}
	var sinkStages []pipeline.NamedStage
	for _, s := range stages {
		if s.Role == pipeline.RoleSink {
			if w, ok := s.Stage.(pipeline.StateWanter); ok {
				t.wanters = append(t.wanters, w)
			}
			sinkStages = append(sinkStages, s)
			continue
		}
		f.Add(s.Name, s.Stage)
	}
	if j.Trains() {
		f.Add("report", pipeline.StageFunc(j.report))
	}
	switch len(sinkStages) {
	case 0:
	case 1:
		f.Add(sinkStages[0].Name, sinkStages[0].Stage)
	default:
		names := make([]string, len(sinkStages))
		ss := make([]pipeline.Stage, len(sinkStages))
		for i, s := range sinkStages {
			names[i], ss[i] = s.Name, s.Stage
		}
		f.Add(strings.Join(names, "+"), pipeline.Tee(ss...))
	}
	return j, nil
}

// report passes the step metrics on to the sinks and keeps the latest for
// Last.
func (j *Job) report(ctx context.Context, in *pipeline.Inbox, out *pipeline.Outbox) error {
	return pipeline.Each(ctx, in, "report", func(v any) error {
		if m, isStep := v.(pipeline.StepMetrics); isStep {
			last := m
			last.State = nil // not kept for Last: a copy of the whole state
			j.last.Store(&last)
			if j.onStep != nil {
				j.onStep(m)
			}
		}
		return out.Send(ctx, v)
	})
}

// Last returns the metrics of the latest step, or nil before the first.
func (j *Job) Last() *pipeline.StepMetrics { return j.last.Load() }

// Trains reports whether the job trains an encoder.
func (j *Job) Trains() bool { return j.t.trains() }

// Steps is the number of optimizer steps taken so far, a resumed
// checkpoint's included (0 for a flow that does not train). It is safe to
// call while the job runs.
func (j *Job) Steps() int64 {
	if !j.Trains() {
		return 0
	}
	return j.control().steps.Load()
}

func (j *Job) control() *control { return j.t.control }

// Encoder is the job's encoder, or nil. Once Run has returned its replicas
// are closed; its Weights stay valid (the trained encoder).
func (j *Job) Encoder() *encode.Pool {
	return j.t.encoder
}

// claimRunDir makes the run folder, locks it for this process, and makes
// its files those of this run: a resumed run's metrics and kNN records
// are reconciled with its checkpoint (see reconcileMetrics), a forced new
// run's are removed. It returns the unlock.
func (j *Job) claimRunDir() (unlock func(), err error) {
	rf := j.run
	if rf.dir == "" {
		return func() {}, nil
	}
	if err := os.MkdirAll(rf.dir, 0o755); err != nil {
		return nil, err
	}
	if unlock, err = lockRunDir(rf.dir); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			unlock()
		}
	}()
	if err := checkFreshRun(rf, j.jo); err != nil { // again, under the lock
		return nil, err
	}
	ck := j.jo.Resume
	if ck == nil {
		if j.jo.Force {
			if err := rf.removeRunFiles(); err != nil {
				return nil, err
			}
		}
		if err := rf.writeMarker(j.Spec.Name); err != nil {
			return nil, err
		}
		return unlock, nil
	}
	if ml := j.t.metrics; ml != nil {
		if ml.prior, err = reconcileMetrics(ml.path, ck); err != nil {
			return nil, err
		}
	}
	if m := j.t.monitor; m != nil && m.path != "" {
		has, err := reconcileEval(m.path, ck.Info.Step)
		if err != nil {
			return nil, err
		}
		if !has && m.due(ck.Info.Step) { // the checkpoint's own epoch end
			m.first, m.firstW = ck.Info.Step, j.Encoder().Weights().Clone()
			m.wants(ck.Info.Step) // open until its record is written
		}
	}
	return unlock, nil
}

// checkFreshRun refuses a new run in a folder that holds another run,
// unless jo.Force says to replace it.
func checkFreshRun(rf *runFiles, jo JobOptions) error {
	if jo.Force || rf.dir == "" || jo.Resume != nil {
		return nil
	}
	if found := rf.existing(); len(found) > 0 {
		hint := ""
		if ck := rf.checkpointDir(); ck != "" {
			if old := rf.marker(); old != nil && old.Checkpoint != "" {
				ck = filepath.Join(rf.dir, old.Checkpoint)
			}
			hint = "continue it with --resume " + ck + ", "
		}
		return fmt.Errorf("%w: %s holds %s: %schoose another --out, or pass --force to replace that run",
			ErrRunExists, rf.dir, strings.Join(found, ", "), hint)
	}
	return nil
}

// sameFolder reports whether a and b name one folder.
func sameFolder(a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	ra, err1 := resolveExisting(a)
	rb, err2 := resolveExisting(b)
	return err1 == nil && err2 == nil && ra == rb
}

// RunDir is the job's run folder, or "".
func (j *Job) RunDir() string { return j.run.dir }

// CheckpointDir is where the job's checkpoint sink writes, or "".
func (j *Job) CheckpointDir() string {
	if ck := j.t.ckpt; ck != nil && ck.dir != "" {
		return ck.dir
	}
	return ""
}

// Run runs the flow, once. A training job is interrupted by cancelling ctx
// (Ctrl-C): the step in progress is finished, or abandoned if it has not
// reached the optimizer, the sinks receive every step taken, and Run
// returns an error that wraps ctx.Err() (errors.Is(err,
// context.Canceled)) and names the last step. When a training job with a
// checkpoint sink ends normally, stops at JobOptions.MaxSteps, or is
// interrupted, Run then writes a checkpoint of the last completed step;
// after any other error (a non-finite loss, a broken file) no checkpoint
// past the last good step is written: the one the checkpoint sink had
// asked for and not yet written, if any, is written then (a good state),
// and otherwise the last checkpoint written stays as it is. The encoder's
// replicas are released when Run returns.
func (j *Job) Run(ctx context.Context) error {
	if !j.Trains() {
		return j.Flow.Run(ctx)
	}
	defer j.t.close()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("training not started: %w", err)
	}
	unlock, err := j.claimRunDir()
	if err != nil {
		return err
	}
	defer unlock()
	// The flow runs on after ctx is done, until the optimize stage has
	// finished its step and stopped: the stages before it are then
	// stopped, and those after it end normally.
	ctl := j.control()
	unwatch := context.AfterFunc(ctx, ctl.requestStop)
	err = j.Flow.Run(context.WithoutCancel(ctx))
	unwatch()
	steps := j.Steps()
	finished := steps >= j.Plan.Steps() || (ctl.maxSteps > 0 && steps >= ctl.maxSteps)
	interrupted := ctx.Err() != nil && err == nil && !finished
	// A kNN evaluation cut short by an interruption leaves the last
	// checkpoint where it is: one past it would lose that evaluation's
	// weights for good, and the resume takes those steps again.
	mon := j.t.monitor
	cut := mon != nil && !mon.settled(steps)
	if ck := j.t.ckpt; ck != nil && (err != nil || cut) {
		// A good state the sink had no time to write, before a failure.
		if ferr := ck.flush(); ferr != nil {
			if err == nil && !interrupted {
				err = fmt.Errorf("checkpoint: %w", ferr)
			} else if err == nil {
				return fmt.Errorf("interrupted after step %d of %d, and the checkpoint of an earlier step failed (%v): %w", steps, j.Plan.Steps(), ferr, ctx.Err())
			} else {
				err = fmt.Errorf("%w (and the checkpoint of an earlier step failed: %v)", err, ferr)
			}
		}
	}
	if j.CheckpointDir() != "" && err == nil && !cut {
		if cerr := j.t.ckpt.save(j.t.state()); cerr != nil {
			return fmt.Errorf("checkpoint: %w", cerr)
		}
	}
	if interrupted && cut {
		return fmt.Errorf("interrupted after step %d of %d, during a kNN evaluation; the last checkpoint stays as it was: %w", steps, j.Plan.Steps(), ctx.Err())
	}
	if interrupted {
		return fmt.Errorf("interrupted after step %d of %d: %w", steps, j.Plan.Steps(), ctx.Err())
	}
	return err
}
