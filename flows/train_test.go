package flows_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/contrastream/contrastream/flows"
	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sinks"
	"github.com/contrastream/contrastream/sinks/safetensors"
	"github.com/contrastream/contrastream/sources"
)

// The training tests run the prebuilt flows on 40 samples of the built-in
// test split (shard 0 of 50), 8 a batch (5 steps an epoch), with a small
// projection head and queue, so that a step takes some tens of
// milliseconds.
const (
	tinySamples   = 40
	tinyBatch     = 8
	stepsPerEpoch = tinySamples / tinyBatch
)

// tinySets are the overrides that make flow small; extra come last.
func tinySets(flow string, extra ...string) []string {
	sets := []string{
		"source.path=builtin:test", "source.shards=50", "epochs=1",
		"stages.augment.size=16", "stages.collate.batch_size=8", "stages.encode.hidden=16", "stages.encode.out=16",
		"sinks.knn.every=0", // the kNN monitor's own test turns it on with small data
	}
	if flow == "moco" {
		sets = append(sets, "stages.queue.size=64", "stages.queue.dim=16")
	}
	return append(sets, extra...)
}

// fineTuneSets are the overrides of the finetune flow for a tiny run, as
// tinySets's: 40 images of builtin:test at 16×16, batches of 8.
func fineTuneSets(extra ...string) []string {
	return append([]string{"source.path=builtin:test", "source.shards=50", "epochs=1",
		"stages.augment.size=16", "stages.collate.batch_size=8", "stages.encode.hidden=16"}, extra...)
}

// prepare loads flow with sets and prepares it to write to dir.
func prepare(t *testing.T, flow string, sets []string, jo flows.JobOptions) *flows.Job {
	t.Helper()
	spec, err := flows.Load(flow, sets)
	if err != nil {
		t.Fatal(err)
	}
	job, err := flows.Prepare(spec, pipeline.Options{}, jo)
	if err != nil {
		t.Fatal(err)
	}
	return job
}

// readMetrics reads a metrics.jsonl file.
func readMetrics(t *testing.T, path string) []pipeline.StepMetrics {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ms []pipeline.StepMetrics
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m pipeline.StepMetrics
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s line %d: %v", path, len(ms)+1, err)
		}
		ms = append(ms, m)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return ms
}

// checkSteps checks that ms are the steps 0..n-1 in order, each with a
// finite loss and a full batch.
func checkSteps(t *testing.T, ms []pipeline.StepMetrics, n int) {
	t.Helper()
	if len(ms) != n {
		t.Errorf("%d metrics lines, want %d (one per step)", len(ms), n)
	}
	for i, m := range ms {
		if m.Step != int64(i) || m.Epoch != i/stepsPerEpoch || m.Samples != tinyBatch {
			t.Errorf("line %d: step %d epoch %d samples %d, want step %d epoch %d samples %d",
				i+1, m.Step, m.Epoch, m.Samples, i, i/stepsPerEpoch, tinyBatch)
		}
		if math.IsNaN(m.Loss) || math.IsInf(m.Loss, 0) || m.Loss <= 0 {
			t.Errorf("step %d: loss %v", m.Step, m.Loss)
		}
	}
}

func readCheckpoint(t *testing.T, dir string) *sinks.Checkpoint {
	t.Helper()
	ck, err := sinks.ReadCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	return ck
}

func TestTrainingFlowsTrainAndCheckpoint(t *testing.T) {
	for _, flow := range []string{"moco", "simclr", "supcon"} {
		t.Run(flow, func(t *testing.T) {
			dir := t.TempDir()
			job := prepare(t, flow, tinySets(flow), flows.JobOptions{RunDir: dir})
			if !job.Trains() || job.Plan.Steps() != stepsPerEpoch {
				t.Fatalf("Trains %v, plan %+v: want a training job of %d steps", job.Trains(), job.Plan, stepsPerEpoch)
			}
			if err := job.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			if job.Steps() != stepsPerEpoch || job.Last() == nil || job.Last().Step != stepsPerEpoch-1 {
				t.Errorf("Steps %d, Last %+v after the run; want %d steps", job.Steps(), job.Last(), stepsPerEpoch)
			}
			steps := readMetrics(t, filepath.Join(dir, "metrics.jsonl"))
			checkSteps(t, steps, stepsPerEpoch)
			var sum sinks.MetricsSummary
			if b, err := os.ReadFile(filepath.Join(dir, "metrics.summary.json")); err != nil || json.Unmarshal(b, &sum) != nil {
				t.Errorf("metrics.summary.json: %v", err)
			} else if sum.Steps != stepsPerEpoch || sum.LastLoss != steps[len(steps)-1].Loss || sum.FirstLoss != steps[0].Loss {
				t.Errorf("summary %+v does not sum up the %d steps", sum, len(steps))
			}

			if job.CheckpointDir() != filepath.Join(dir, "checkpoint") {
				t.Errorf("checkpoint dir %q", job.CheckpointDir())
			}
			ck := readCheckpoint(t, job.CheckpointDir())
			if ck.Info.Step != stepsPerEpoch || ck.Info.Epoch != 1 || ck.Info.Offset != 0 || ck.Info.Seed != 1 {
				t.Errorf("state.json: step %d epoch %d offset %d seed %d; want step %d at the start of epoch 1, seed 1",
					ck.Info.Step, ck.Info.Epoch, ck.Info.Offset, ck.Info.Seed, stepsPerEpoch)
			}
			if !strings.Contains(ck.Info.Flow, "name: "+flow) || !strings.Contains(ck.Info.Flow, "batch_size: 8") {
				t.Errorf("state.json's flow is not the flow run:\n%s", ck.Info.Flow)
			}
			if ck.Info.Versions["go"] == "" {
				t.Errorf("state.json versions %v", ck.Info.Versions)
			}
			// model.safetensors: the encoder under PyTorch-like names, its
			// shapes those of the network (1 channel in, 16 out).
			for name, shape := range map[string][]int{
				"backbone.0.weight": {32, 1, 3, 3}, "backbone.1.weight": {32}, "backbone.1.running_mean": {32},
				"backbone.1.running_var": {32}, "head.2.weight": {16, 16}, "head.2.bias": {16},
			} {
				if got, ok := ck.Model[name]; !ok || !slices.Equal(got.Shape, shape) {
					t.Errorf("model.safetensors %s: shape %v (present %v), want %v", name, got.Shape, ok, shape)
				}
			}
			for name := range ck.Model {
				if strings.HasPrefix(name, "key.") || strings.HasPrefix(name, "optim.") || strings.HasPrefix(name, "queue.") {
					t.Errorf("model.safetensors holds training state %s", name)
				}
			}
			checkFinite(t, "model", ck.Model)
			checkFinite(t, "state", ck.State)
			// state.safetensors: the optimizer, and for MoCo the key
			// encoder and the queue.
			want := []string{"optim.step", "optim.momentum.backbone.0.weight", "optim.momentum.head.2.bias"}
			if flow == "moco" {
				want = append(want, "key.backbone.0.weight", "key.backbone.1.running_var", "key.head.2.weight", "queue.keys", "queue.ptr")
			}
			for _, name := range want {
				if _, ok := ck.State[name]; !ok {
					t.Errorf("state.safetensors lacks %s", name)
				}
			}
			if got := ck.State["optim.step"].F32; len(got) != 2 || got[0] != stepsPerEpoch || got[1] != 0 {
				t.Errorf("optim.step %v, want [%d 0]", got, stepsPerEpoch)
			}
			if flow == "moco" {
				if got := ck.State["queue.ptr"].F32; len(got) != 1 || got[0] != float32(stepsPerEpoch*tinyBatch%64) {
					t.Errorf("queue.ptr %v after %d batches of %d into 64 keys", got, stepsPerEpoch, tinyBatch)
				}
				if n := len(ck.State["queue.keys"].F32); n != 64*16 {
					t.Errorf("queue.keys has %d values, want 64×16", n)
				}
			} else if len(ck.State) != 1+len(ck.Model)-6 { // optim.step and a moment per parameter (not the 6 running statistics)
				t.Errorf("state.safetensors of %s holds %d tensors, want %d", flow, len(ck.State), 1+len(ck.Model)-6)
			}
			// The checkpoint is a safetensors file any reader takes.
			f, err := safetensors.Read(filepath.Join(job.CheckpointDir(), sinks.ModelFile))
			if err != nil || len(f.Tensors) != len(ck.Model) {
				t.Errorf("model.safetensors read alone: %d tensors, %v", len(f.Tensors), err)
			}
		})
	}
}

func checkFinite(t *testing.T, file string, ts map[string]safetensors.Tensor) {
	t.Helper()
	for name, ten := range ts {
		for _, v := range ten.F32 {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Errorf("%s %s holds %v", file, name, v)
				break
			}
		}
	}
}

// sameTensors reports every tensor of want that got lacks or holds other
// values (bit for bit), and any tensor got has beyond want.
func sameTensors(t *testing.T, file string, got, want map[string]safetensors.Tensor) {
	t.Helper()
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("%s: %s missing", file, name)
			continue
		}
		if !slices.Equal(g.Shape, w.Shape) || len(g.F32) != len(w.F32) {
			t.Errorf("%s %s: shape %v, want %v", file, name, g.Shape, w.Shape)
			continue
		}
		var diff int
		var worst float64
		for i := range w.F32 {
			if math.Float32bits(g.F32[i]) != math.Float32bits(w.F32[i]) {
				diff++
				worst = max(worst, math.Abs(float64(g.F32[i])-float64(w.F32[i])))
			}
		}
		if diff > 0 {
			t.Errorf("%s %s: %d of %d values differ, by up to %g", file, name, diff, len(w.F32), worst)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: unexpected %s", file, name)
		}
	}
}

// TestResumeGivesTheSameWeights trains 2 epochs (10 steps) in one go, then
// the same flow stopped part way (by JobOptions.MaxSteps, at an epoch's end
// and in the middle of one, and by cancelling the context as Ctrl-C does)
// and resumed from its checkpoint to the end: the weights, the optimizer's
// moments, the key encoder, the queue and every step's loss are the same,
// bit for bit. They can be: everything random derives from the seed, the
// resumed data stream skips exactly the samples the steps taken consumed,
// BatchNorm statistics are saved as of the last step taken, and the
// arithmetic does not depend on timing (the replicas' gradients are summed
// in a fixed order).
func TestResumeGivesTheSameWeights(t *testing.T) {
	flow := "moco"
	sets := tinySets(flow, "epochs=2")
	const total = 2 * stepsPerEpoch

	whole := t.TempDir()
	if err := prepare(t, flow, sets, flows.JobOptions{RunDir: whole}).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := readCheckpoint(t, filepath.Join(whole, "checkpoint"))
	wantMetrics := readMetrics(t, filepath.Join(whole, "metrics.jsonl"))
	checkSteps(t, wantMetrics, total)

	for _, tc := range []struct {
		name     string
		maxSteps int64 // stop there, or by cancelling after 2 steps when 0
	}{
		{"max steps at an epoch's end", stepsPerEpoch},
		{"max steps within an epoch", 3},
		{"interrupted", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			before := runtime.NumGoroutine()
			job := prepare(t, flow, sets, flows.JobOptions{RunDir: dir, MaxSteps: tc.maxSteps})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			watching := make(chan struct{})
			if tc.maxSteps == 0 {
				go func() {
					defer close(watching)
					for job.Steps() < 2 && ctx.Err() == nil {
						time.Sleep(time.Millisecond)
					}
					cancel()
				}()
			} else {
				close(watching)
			}
			err := job.Run(ctx)
			<-watching
			checkGoroutines(t, before)
			stopped := job.Steps()
			if tc.maxSteps > 0 {
				if err != nil || stopped != tc.maxSteps {
					t.Fatalf("run to max steps %d: %d steps, %v", tc.maxSteps, stopped, err)
				}
			} else if !errors.Is(err, context.Canceled) || stopped < 2 || stopped >= total {
				t.Fatalf("interrupted run: %d steps, error %v; want 2 ≤ steps < %d and context.Canceled", stopped, err, total)
			}
			ck := readCheckpoint(t, filepath.Join(dir, "checkpoint"))
			if ck.Info.Step != stopped || ck.Info.Epoch != int(stopped/stepsPerEpoch) || ck.Info.Offset != stopped%stepsPerEpoch*tinyBatch {
				t.Fatalf("checkpoint after %d steps: step %d epoch %d offset %d", stopped, ck.Info.Step, ck.Info.Epoch, ck.Info.Offset)
			}
			// Every step taken is in the metrics, even when interrupted.
			checkSteps(t, readMetrics(t, filepath.Join(dir, "metrics.jsonl")), int(stopped))

			resumed := prepare(t, flow, sets, flows.JobOptions{RunDir: dir, Resume: ck})
			if resumed.Steps() != stopped {
				t.Errorf("the resumed job starts at step %d, want %d", resumed.Steps(), stopped)
			}
			if err := resumed.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := readCheckpoint(t, filepath.Join(dir, "checkpoint"))
			if got.Info.Step != total {
				t.Errorf("resumed run ends at step %d, want %d", got.Info.Step, total)
			}
			sameTensors(t, "model.safetensors", got.Model, want.Model)
			sameTensors(t, "state.safetensors", got.State, want.State)
			ms := readMetrics(t, filepath.Join(dir, "metrics.jsonl"))
			checkSteps(t, ms, total)
			for i := range min(len(ms), len(wantMetrics)) {
				if ms[i].Loss != wantMetrics[i].Loss || ms[i].LR != wantMetrics[i].LR {
					t.Errorf("step %d: loss %v lr %v, in one go %v and %v", i, ms[i].Loss, ms[i].LR, wantMetrics[i].Loss, wantMetrics[i].LR)
				}
			}
		})
	}
}

// checkGoroutines fails t if more goroutines than before are still
// running after a moment: no goroutine may outlive Job.Run.
func checkGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines outlive Run (%d before):\n%s", n-before, before, buf[:runtime.Stack(buf, true)])
	}
}

func TestResumeRefusals(t *testing.T) {
	dir := t.TempDir()
	if err := prepare(t, "moco", tinySets("moco"), flows.JobOptions{RunDir: dir, MaxSteps: 2}).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	ck := readCheckpoint(t, filepath.Join(dir, "checkpoint"))
	for _, tc := range []struct {
		name string
		flow string
		sets []string
		jo   flows.JobOptions
		want []string
	}{
		{"other seed", "moco", tinySets("moco", "seed=2"), flows.JobOptions{Resume: ck}, []string{"seed 1", "seed 2"}},
		{"past max steps", "moco", tinySets("moco"), flows.JobOptions{Resume: ck, MaxSteps: 2}, []string{"step 2", "max steps"}},
		{"other encoder", "moco", tinySets("moco", "stages.encode.out=32", "stages.queue.dim=32"), flows.JobOptions{Resume: ck}, []string{"resume", "encoder", "Out:16", "Out:32"}},
		{"no key encoder in the checkpoint", "moco", tinySets("moco"), flows.JobOptions{Resume: &sinks.Checkpoint{Model: ck.Model, Info: ck.Info}}, []string{"resume", "key"}},
		{"negative max steps", "moco", tinySets("moco"), flows.JobOptions{MaxSteps: -1}, []string{"max steps"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := flows.Load(tc.flow, tc.sets)
			if err != nil {
				t.Fatal(err)
			}
			_, err = flows.Prepare(spec, pipeline.Options{}, tc.jo)
			if err == nil {
				t.Fatal("Prepare succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestInterruptBeforeTraining: a context already cancelled stops Run at
// once, with no checkpoint.
func TestInterruptBeforeTraining(t *testing.T) {
	dir := t.TempDir()
	job := prepare(t, "simclr", tinySets("simclr"), flows.JobOptions{RunDir: dir})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := job.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "checkpoint")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a checkpoint was written: %v", err)
	}
}

// TestNonFiniteLossStopsTraining: a learning rate of 1e30 blows the
// weights up at the first step, so the loss of the second is not finite.
// Run fails naming that step; the checkpoint written after every step
// stays as the last good step left it, with no trace of the failed one.
func TestNonFiniteLossStopsTraining(t *testing.T) {
	for _, tc := range []struct{ name, flow string }{{"moco", "moco"}, {"simclr", "simclr"}, {"moco resumed", "moco"}} {
		t.Run(tc.name, func(t *testing.T) {
			flow, dir := tc.flow, t.TempDir()
			var jo flows.JobOptions
			if strings.HasSuffix(tc.name, "resumed") {
				// 3 good steps, then a resumed run that blows up: the step
				// named is counted over the whole run.
				first := prepare(t, flow, tinySets(flow, "epochs=2"), flows.JobOptions{RunDir: dir, MaxSteps: 3})
				if err := first.Run(context.Background()); err != nil {
					t.Fatal(err)
				}
				jo.Resume = readCheckpoint(t, filepath.Join(dir, "checkpoint"))
			}
			jo.RunDir = dir
			job := prepare(t, flow, tinySets(flow, "stages.optimize.lr=1e30", "sinks.1.every=1", "epochs=2"), jo)
			err := job.Run(context.Background())
			if err == nil {
				t.Fatal("training with lr 1e30 succeeded")
			}
			good := job.Steps()
			if good < 1 || good >= job.Plan.Steps() || (jo.Resume != nil && good <= jo.Resume.Info.Step) {
				t.Fatalf("stopped after %d good steps: %v", good, err)
			}
			for _, w := range []string{"step " + strconv.FormatInt(good, 10) + " ", "the loss is", "lower the learning rate"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if errors.Is(err, context.Canceled) {
				t.Errorf("error %v reads as an interruption", err)
			}
			ck := readCheckpoint(t, filepath.Join(dir, "checkpoint"))
			if ck.Info.Step != good {
				t.Errorf("checkpoint at step %d, want the last good step %d", ck.Info.Step, good)
			}
			checkFinite(t, "model", ck.Model)
			checkFinite(t, "state", ck.State)
			if flow == "moco" {
				if got := ck.State["queue.ptr"].F32; len(got) != 1 || got[0] != float32(int(good)*tinyBatch%64) {
					t.Errorf("queue.ptr %v in the checkpoint of step %d: the queue is not that step's", got, good)
				}
			}
			ms := readMetrics(t, filepath.Join(dir, "metrics.jsonl"))
			if len(ms) > int(good) {
				t.Errorf("%d metrics lines for %d good steps", len(ms), good)
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), ".") {
					t.Errorf("left behind in the run folder: %s", e.Name())
				}
			}
		})
	}
}

// writeTinyDataset writes n images of the built-in test split as a Parquet
// file in the Hugging Face layout, with or without labels.
func writeTinyDataset(t *testing.T, path string, n int, labeled bool) {
	t.Helper()
	ds, err := flows.OpenDataset(sources.Config{Path: flows.BuiltinTest})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	w, err := sinks.CreateDataset(path, sinks.DatasetWriterOptions{Unlabeled: !labeled})
	if err != nil {
		t.Fatal(err)
	}
	samples, err := ds.ReadChunk(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range samples[:n] {
		if !labeled {
			s.Label = pipeline.NoLabel
		}
		if err := w.WriteSample(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestTrainingFlowsThatDoNotFit: a flow whose stages do not fit together
// fails at Prepare, before anything trains, with a message that names the
// stage and field and says what to change.
func TestTrainingFlowsThatDoNotFit(t *testing.T) {
	dir := t.TempDir()
	unlabeled := filepath.Join(dir, "unlabeled.parquet")
	writeTinyDataset(t, unlabeled, 16, false)
	flowFile := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	head := "name: x\nepochs: 1\nsource: {kind: dataset, path: builtin:test, shards: 50}\nstages:\n  - kind: augment\n  - {kind: collate, batch_size: 8}\n"
	encode := "  - {kind: encode, hidden: 16, out: 16}\n"
	for _, tc := range []struct {
		name string
		flow string
		sets []string
		want []string
	}{
		{"supcon without labels", "supcon", tinySets("supcon", "source.path="+unlabeled, "source.shards=1"),
			[]string{"(loss)", "type", "supcon needs labels", "ntxent"}},
		{"queue dim is not the encoder's out", "moco", tinySets("moco", "stages.queue.dim=64"),
			[]string{"(queue)", "dim", "64", "out", "16", "set the queue's dim to 16"}},
		{"queue dim by default, encoder out set", "moco", tinySets("moco", "stages.queue.dim="),
			[]string{"(queue)", "dim", "128", "16"}},
		{"infonce without a queue", "simclr", tinySets("simclr", "stages.loss.type=infonce"),
			[]string{"(loss)", "infonce", "queue", "ntxent"}},
		{"optimize without encode", flowFile("a.yaml", head+"  - {kind: loss, type: ntxent}\n  - kind: optimize\nsinks: [{kind: discard}]\n"), nil,
			[]string{"(loss)", "accepts encoded", "batch"}}, // the registry's types catch this one at Load
		{"optimize without a loss", flowFile("b.yaml", head+encode+"  - kind: optimize\nsinks: [{kind: discard}]\n"), nil,
			[]string{"(optimize)", "loss stage"}},
		{"encode without optimize", flowFile("c.yaml", head+encode+"  - {kind: loss, type: ntxent}\nsinks: [{kind: discard}]\n"), nil,
			[]string{"encode", "optimize"}},
		{"two checkpoint sinks", "simclr", tinySets("simclr", "sinks=[{kind: checkpoint, name: a}, {kind: checkpoint, name: b}]"),
			[]string{"one checkpoint sink"}},
		{"crossentropy on two views", "simclr", tinySets("simclr", "stages.loss.type=crossentropy", "stages.loss.temperature="),
			[]string{"(loss)", "type", "crossentropy reads one view", "views: 1"}},
		{"a contrastive loss on one view", "finetune", fineTuneSets("stages.loss.type=ntxent"),
			[]string{"(loss)", "type", "ntxent compares two views", "views: 2"}},
		{"finetune without labels", "finetune", fineTuneSets("source.path="+unlabeled, "source.shards=1"),
			[]string{"(loss)", "crossentropy needs labels"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := flows.Load(tc.flow, tc.sets)
			if err == nil {
				var job *flows.Job
				if job, err = flows.Prepare(spec, pipeline.Options{}, flows.JobOptions{RunDir: filepath.Join(dir, "run")}); err == nil {
					t.Fatalf("Prepare succeeded: %+v", job.Plan)
				}
			}
			t.Log(err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "run")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a flow that failed to prepare wrote to its run folder: %v", err)
	}
	// The unlabeled file itself is fine for an unsupervised flow.
	job := prepare(t, "simclr", tinySets("simclr", "source.path="+unlabeled, "source.shards=1"), flows.JobOptions{})
	if err := job.Run(context.Background()); err != nil || job.Steps() != 2 {
		t.Errorf("simclr on 16 unlabeled images: %d steps, %v", job.Steps(), err)
	}
}

// After one MoCo step the key encoder is ξ₁ = m·ξ₀ + (1−m)·θ₁, where ξ₀ is
// the initial weights (the key encoder starts as a copy of the query
// encoder) and θ₁ the query encoder after the optimizer's step; and the
// key encoder receives no gradient (it differs from θ₁).
func TestMoCoKeyEncoderFollowsTheMomentumFormula(t *testing.T) {
	const m = 0.9 // far from 1, so a wrong formula shows
	sets := tinySets("moco", "stages.queue.momentum=0.9")
	spec, err := flows.Load("moco", sets)
	if err != nil {
		t.Fatal(err)
	}
	initial, err := flows.NewEncoder(spec) // the weights training starts from
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	job := prepare(t, "moco", sets, flows.JobOptions{RunDir: dir, MaxSteps: 1})
	if err := job.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	ck := readCheckpoint(t, job.CheckpointDir())
	if ck.Info.Step != 1 {
		t.Fatalf("checkpoint at step %d, want 1", ck.Info.Step)
	}
	checked := 0
	for _, p := range initial.Weights.Params {
		theta, xi := ck.Model[p.Name].F32, ck.State["key."+p.Name].F32
		if len(theta) != len(p.Data) || len(xi) != len(p.Data) {
			t.Fatalf("%s: %d query and %d key values, want %d", p.Name, len(theta), len(xi), len(p.Data))
		}
		moved := false
		for i, x0 := range p.Data {
			want := float32(m)*x0 + float32(1-m)*theta[i]
			if math.Abs(float64(xi[i]-want)) > 1e-6*math.Max(1, math.Abs(float64(want))) {
				t.Fatalf("%s[%d]: key %v, want m·ξ₀ + (1−m)·θ₁ = %v", p.Name, i, xi[i], want)
			}
			moved = moved || theta[i] != x0
			checked++
		}
		if !moved && !strings.Contains(p.Name, "running") {
			t.Errorf("%s: the query encoder did not move in the step", p.Name)
		}
	}
	if checked == 0 {
		t.Fatal("no parameter checked")
	}
}
