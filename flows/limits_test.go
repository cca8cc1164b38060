package flows_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/contrastream/contrastream/flows"
	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/stages/loss"
)

// TestZeroIsNotTheDefault: a temperature, learning rate or trust
// coefficient written as 0, in the flow file or by --set, is refused with
// the spec's usual error naming the field; only a field left out (or
// null) means the default. They used to mean the default silently.
func TestZeroIsNotTheDefault(t *testing.T) {
	moco, err := flows.YAML("moco")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "zero.yaml")
	if err := os.WriteFile(file, []byte(strings.Replace(string(moco), "temperature: 0.2", "temperature: 0", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	line := 1 + strings.Count(string(moco)[:strings.Index(string(moco), "temperature: 0.2")], "\n")
	for _, tc := range []struct {
		name, flow string
		sets       []string
		want       string // the error's start
	}{
		{"file", file, nil, fmt.Sprintf("%s:%d: stages[4] (loss).temperature: must be a finite number ≥ 0.0001", file, line)},
		{"set", "moco", []string{"stages.loss.temperature=0"}, "--set stages.loss.temperature=0: stages[4] (loss).temperature: must be"},
		{"simclr", "simclr", []string{"stages.loss.temperature=0"}, "--set stages.loss.temperature=0: stages[3] (loss).temperature: must be"},
		{"knn sink", "moco", []string{"sinks.knn.temperature=0"}, "--set sinks.knn.temperature=0: sinks[2] (knn).temperature: must be"},
		{"lr", "moco", []string{"stages.optimize.lr=0"}, "--set stages.optimize.lr=0: stages[5] (optimize).lr: must be"},
		{"trust coefficient", "moco", []string{"stages.optimize.optimizer=lars", "stages.optimize.trust_coefficient=0"},
			"--set stages.optimize.trust_coefficient=0: stages[5] (optimize).trust_coefficient: must be"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := flows.Load(tc.flow, tc.sets)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) || !strings.Contains(err.Error(), "got 0") {
				t.Fatalf("error %v; want one starting %q and saying it got 0", err, tc.want)
			}
		})
	}
	// Left out, the loss's own default: InfoNCE's 0.2.
	spec, err := flows.Load("moco", []string{"stages.loss.temperature=null"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := spec.Stages[4].Config.(*loss.Config)
	l, err := loss.New(*cfg)
	if err != nil || cfg.Temperature != nil || l.(*loss.InfoNCE).Temperature() != loss.DefaultInfoNCETemperature {
		t.Errorf("temperature left out: config %v, loss %v, %v; want the default %g", cfg.Temperature, l, err, loss.DefaultInfoNCETemperature)
	}
}

// TestLoadRefusesHugeFlowFiles: a flow file one byte over
// pipeline.MaxSpecBytes is refused with its name, its size and the limit
// (a comment makes it that large, so it would parse); one of exactly the
// limit loads.
func TestLoadRefusesHugeFlowFiles(t *testing.T) {
	moco, err := flows.YAML("moco")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, size int) string {
		b := append(append([]byte{}, moco...), "\n#"...)
		b = append(b, strings.Repeat("x", size-len(b))...)
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if _, err := flows.Load(write("limit.yaml", pipeline.MaxSpecBytes), nil); err != nil {
		t.Errorf("a flow file of exactly the limit: %v", err)
	}
	big := write("big.yaml", pipeline.MaxSpecBytes+1)
	_, err = flows.Load(big, nil)
	if err == nil {
		t.Fatal("a flow file over the limit loaded")
	}
	for _, want := range []string{big, fmt.Sprint(pipeline.MaxSpecBytes + 1), fmt.Sprint(pipeline.MaxSpecBytes)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// TestPlanRefusesSpecsTooLargeToRecord: a spec built in Go whose
// normalised YAML (what every checkpoint records, and a resume parses)
// would be over pipeline.MaxSpecBytes is refused before it runs.
func TestPlanRefusesSpecsTooLargeToRecord(t *testing.T) {
	spec, err := flows.Load("data", nil)
	if err != nil {
		t.Fatal(err)
	}
	spec.Description = strings.Repeat("x", pipeline.MaxSpecBytes)
	if _, err := flows.PlanOf(spec); err == nil || !strings.Contains(err.Error(), "checkpoint records") {
		t.Errorf("PlanOf: %v, want a refusal of the spec's size", err)
	}
}
