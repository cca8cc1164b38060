package flows_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/contrastream/contrastream/flows"
	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sources"
)

// monitorSets train on the 40 samples of the Parquet file data and turn
// the kNN monitor on with them as memory (the flow's own data) and as
// queries.
func monitorSets(data string) []string {
	return []string{"source.path=" + data, "source.shards=1", "sinks.knn.every=1", "sinks.knn.test={path: " + data + "}"}
}

func readEvals(t *testing.T, path string) []flows.EvalRecord {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []flows.EvalRecord
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r flows.EvalRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s line %d: %v", path, len(recs)+1, err)
		}
		recs = append(recs, r)
	}
	return recs
}

// TestKNNMonitorDoesNotChangeTraining trains two epochs with the kNN
// monitor after each and without it: the weights, the optimizer's state
// and every step's loss are the same, bit for bit, because the monitor
// evaluates a copy of the weights in eval mode and draws no random
// numbers. Its records are one per epoch, in eval.jsonl, and the last one
// is what the final checkpoint's encoder scores.
func TestKNNMonitorDoesNotChangeTraining(t *testing.T) {
	for _, flow := range []string{"simclr", "moco"} {
		t.Run(flow, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "tiny.parquet")
			writeTinyDataset(t, data, tinySamples, true)
			sets := tinySets(flow, "epochs=2", "source.path="+data, "source.shards=1")
			plain := t.TempDir()
			if err := prepare(t, flow, sets, flows.JobOptions{RunDir: plain}).Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(plain, "eval.jsonl")); !os.IsNotExist(err) {
				t.Errorf("every: 0 still writes eval.jsonl (%v)", err)
			}
			dir := t.TempDir()
			before := runtime.NumGoroutine()
			job := prepare(t, flow, append(sets, monitorSets(data)...), flows.JobOptions{RunDir: dir})
			if err := job.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			checkGoroutines(t, before)
			want, got := readCheckpoint(t, filepath.Join(plain, "checkpoint")), readCheckpoint(t, filepath.Join(dir, "checkpoint"))
			sameTensors(t, "model.safetensors", got.Model, want.Model)
			sameTensors(t, "state.safetensors", got.State, want.State)
			wm, gm := readMetrics(t, filepath.Join(plain, "metrics.jsonl")), readMetrics(t, filepath.Join(dir, "metrics.jsonl"))
			checkSteps(t, gm, 2*stepsPerEpoch)
			for i := range min(len(wm), len(gm)) {
				if wm[i].Loss != gm[i].Loss {
					t.Errorf("step %d: loss %v with the monitor, %v without", i, gm[i].Loss, wm[i].Loss)
				}
			}
			recs := readEvals(t, filepath.Join(dir, "eval.jsonl"))
			if len(recs) != 2 {
				t.Fatalf("%d eval records, want 2: %+v", len(recs), recs)
			}
			for i, r := range recs {
				if r.Epoch != i+1 || r.Step != int64((i+1)*stepsPerEpoch) || r.K != 200 || r.T != 0.1 || r.NTrain != tinySamples || r.NTest != 40 ||
					r.KNNTop1 < 0 || r.KNNTop1 > 1 || r.Seconds <= 0 {
					t.Errorf("record %d: %+v", i, r)
				}
			}
			if last := job.LastEval(); last == nil || *last != recs[1] {
				t.Errorf("LastEval %+v, want the last record %+v", last, recs[1])
			}
			// The last record scores the encoder of the final checkpoint.
			enc, err := flows.LoadEncoder(filepath.Join(dir, "checkpoint"))
			if err != nil {
				t.Fatal(err)
			}
			src := sources.Config{Path: data}
			ms, err := flows.KNN(context.Background(), enc.Weights, enc.Augment, flows.KNNConfig{Train: src, Test: src})
			if err != nil {
				t.Fatal(err)
			}
			if ms.Accuracy != recs[1].KNNTop1 {
				t.Errorf("the checkpoint's encoder scores %v, the monitor's last record %v", ms.Accuracy, recs[1].KNNTop1)
			}
		})
	}
}

func TestKNNMonitorRefusals(t *testing.T) {
	dir := t.TempDir()
	tiny := filepath.Join(dir, "tiny.parquet")
	writeTinyDataset(t, tiny, 16, true)
	unlabeled := filepath.Join(dir, "unlabeled.parquet")
	writeTinyDataset(t, unlabeled, 16, false)
	for _, tc := range []struct {
		name string
		sets []string
		want []string
	}{
		{"negative every", []string{"sinks.knn.every=-1"}, []string{"every", "≥ 0"}},
		{"own data without a test split", []string{"source.path=" + tiny, "source.shards=1", "sinks.knn.every=1"}, []string{"test", tiny, "every: 0"}},
		{"unlabeled queries", []string{"sinks.knn.every=1", "sinks.knn.test={path: " + unlabeled + "}"}, []string{"test", "no labels"}},
		{"bad k", []string{"sinks.knn.every=1", "sinks.knn.k=-3"}, []string{"k", "≥ 1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := flows.Load("simclr", tinySets("simclr", tc.sets...))
			if err == nil {
				_, err = flows.Prepare(spec, pipeline.Options{}, flows.JobOptions{})
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
