package flows_test

import (
	"context"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/contrastream/contrastream/flows"
	"github.com/contrastream/contrastream/pipeline"
)

// vitSets make moco-vit small: the tiny data (16×16 views, so patch 4),
// a 64-key queue of dimension 16, and a warm-up that fits in 5 steps.
func vitSets(extra ...string) []string {
	return tinySets("moco-vit", append([]string{"stages.encode.patch=4", "stages.queue.size=64", "stages.queue.dim=16",
		"stages.optimize.schedule.warmup_steps=2"}, extra...)...)
}

// TestMoCoViTTrainsAndCheckpoints trains moco-vit for one tiny epoch and
// checks its metrics and its checkpoint: timm's names, no BatchNorm
// statistics, the key encoder and the optimizer's moments in the state,
// and weights that LoadEncoder reads back.
func TestMoCoViTTrainsAndCheckpoints(t *testing.T) {
	dir := t.TempDir()
	job := prepare(t, "moco-vit", vitSets(), flows.JobOptions{RunDir: dir})
	if err := job.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	steps := readMetrics(t, filepath.Join(dir, "metrics.jsonl"))
	checkSteps(t, steps, stepsPerEpoch)
	for _, s := range steps {
		if math.IsNaN(s.Loss) || math.IsInf(s.Loss, 0) {
			t.Errorf("step %d: loss %v", s.Step, s.Loss)
		}
	}
	if lr := steps[0].LR; math.Abs(lr-0.5e-4) > 1e-12 {
		t.Errorf("first step's lr %v, want 5e-05 (the first of the warm-up's 2 steps to 1e-4)", lr)
	}
	ck := readCheckpoint(t, job.CheckpointDir())
	for name, shape := range map[string][]int{
		"cls_token": {1, 1, 64}, "pos_embed": {1, 17, 64}, "patch_embed.weight": {64, 1, 4, 4},
		"blocks.1.qkv.weight": {192, 64}, "blocks.0.fc1.bias": {128}, "norm.weight": {64}, "head.2.weight": {16, 16},
	} {
		if got, ok := ck.Model[name]; !ok || !slices.Equal(got.Shape, shape) {
			t.Errorf("model.safetensors %s: shape %v (present %v), want %v", name, got.Shape, ok, shape)
		}
	}
	for name := range ck.Model {
		if strings.Contains(name, "running") {
			t.Errorf("model.safetensors holds %s", name)
		}
	}
	for _, name := range []string{"key.cls_token", "key.blocks.1.fc2.weight", "optim.step", "queue.keys"} {
		if _, ok := ck.State[name]; !ok {
			t.Errorf("state.safetensors lacks %s", name)
		}
	}
	checkFinite(t, "model", ck.Model)
	checkFinite(t, "state", ck.State)
	enc, err := flows.LoadEncoder(job.CheckpointDir())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := enc.Weights.Tensor("blocks.0.qkv.weight").Data, ck.Model["blocks.0.qkv.weight"].F32; !slices.Equal(got, want) {
		t.Error("LoadEncoder's weights are not the checkpoint's")
	}
}

// TestMoCoViTPatchMustDivide checks that a patch size that does not tile
// the views stops the flow at Prepare, naming the field and the sizes.
func TestMoCoViTPatchMustDivide(t *testing.T) {
	spec, err := flows.Load("moco-vit", vitSets("stages.encode.patch=7"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = flows.Prepare(spec, pipeline.Options{}, flows.JobOptions{})
	if err == nil {
		t.Fatal("Prepare succeeded with 7×7 patches of 16×16 views")
	}
	t.Log(err)
	for _, w := range []string{"encode", "patch", "7", "16×16", "2, 4, 8"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}
