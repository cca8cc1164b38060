package pipeline

import (
	"errors"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const overrideBase = `seed: 1
source: {kind: fake, path: data/train.parquet}
stages:
  - kind: augment
    crop_scale: [0.3, 1]
  - {kind: collate, batch_size: 256}
sinks:
  - {kind: metrics}
  - {kind: metrics, name: more, every: 5}
`

func TestOverrides(t *testing.T) {
	reg := newTestRegistry()
	for _, tc := range []struct {
		name  string
		yaml  string // overrideBase when ""
		sets  []string
		check func(*Spec) bool
	}{
		{"top level", "", []string{"seed=3", "epochs=2", "max_bad_samples=-1", "name=run 7"}, func(s *Spec) bool {
			return s.Seed == 3 && s.Epochs == 2 && s.MaxBadSamples == -1 && s.Name == "run 7"
		}},
		{"source", "", []string{"source.path=x.parquet"}, func(s *Spec) bool {
			return s.Source.Config.(*fakeSourceConfig).Path == "x.parquet"
		}},
		{"stage by name", "", []string{"stages.augment.crop_scale=[0.2,1]"}, func(s *Spec) bool {
			cs := s.Stages[0].Config.(*fakeAugmentConfig).CropScale
			return len(cs) == 2 && cs[0] == 0.2 && cs[1] == 1
		}},
		{"stage by index", "", []string{"stages.1.batch_size=64"}, func(s *Spec) bool {
			return s.Stages[1].Config.(*fakeCollateConfig).BatchSize == 64
		}},
		{"sink by name", "", []string{"sinks.metrics.every=10", "sinks.more.every=20"}, func(s *Spec) bool {
			return s.Sinks[0].Config.(*fakeMetricsConfig).Every == 10 && s.Sinks[1].Config.(*fakeMetricsConfig).Every == 20
		}},
		{"shorthand", "", []string{"augment.workers=4", "fake.limit=9", "more.path=m.jsonl"}, func(s *Spec) bool {
			return s.Stages[0].Config.(*fakeAugmentConfig).Workers == 4 &&
				s.Source.Config.(*fakeSourceConfig).Limit == 9 &&
				s.Sinks[1].Config.(*fakeMetricsConfig).Path == "m.jsonl"
		}},
		{"new parameter", "", []string{"stages.collate.last=pad", "stages.augment.color.brightness=0.5"}, func(s *Spec) bool {
			return s.Stages[1].Config.(*fakeCollateConfig).Last == "pad" &&
				s.Stages[0].Config.(*fakeAugmentConfig).Color.Brightness == 0.5
		}},
		{"list element", "", []string{"stages.augment.crop_scale.0=0.5"}, func(s *Spec) bool {
			cs := s.Stages[0].Config.(*fakeAugmentConfig).CropScale
			return cs[0] == 0.5 && cs[1] == 1
		}},
		{"mapping value", "", []string{"stages.augment.color={brightness: 0.1, contrast: 0.2}"}, func(s *Spec) bool {
			c := s.Stages[0].Config.(*fakeAugmentConfig).Color
			return c.Brightness == 0.1 && c.Contrast == 0.2
		}},
		{"empty value is the default", "", []string{"stages.collate.batch_size="}, func(s *Spec) bool {
			return s.Stages[1].Config.(*fakeCollateConfig).BatchSize == 0
		}},
		{"whole stage", "", []string{"stages.1={kind: collate, name: c2, last: pad}"}, func(s *Spec) bool {
			return s.Stages[1].Name == "c2" && s.Stages[1].Config.(*fakeCollateConfig).Last == "pad"
		}},
		{"last one wins", "", []string{"seed=3", "seed=4"}, func(s *Spec) bool { return s.Seed == 4 }},
		{"renamed, then by new name", "", []string{"stages.0.name=strong", "stages.strong.workers=3"}, func(s *Spec) bool {
			return s.Stages[0].Name == "strong" && s.Stages[0].Config.(*fakeAugmentConfig).Workers == 3
		}},
		{"alias copied, not shared", "source: {kind: fake, path: x}\nstages: [{kind: augment}, {kind: collate}]\nsinks:\n  - &m {kind: metrics, labels: &l {a: b}}\n  - {<<: *m, name: m2, labels: *l}\n",
			[]string{"sinks.m2.every=7", "sinks.m2.labels.a=c"}, func(s *Spec) bool {
				m, m2 := s.Sinks[0].Config.(*fakeMetricsConfig), s.Sinks[1].Config.(*fakeMetricsConfig)
				return m.Every == 0 && m2.Every == 7 && m.Labels["a"] == "b" && m2.Labels["a"] == "c"
			}},
		{"merged key copied", "source: {kind: fake, path: x}\nsinks:\n  - &m {kind: metrics, labels: {a: b}}\n  - {<<: *m, name: m2}\n",
			[]string{"sinks.m2.labels.a=c"}, func(s *Spec) bool {
				m, m2 := s.Sinks[0].Config.(*fakeMetricsConfig), s.Sinks[1].Config.(*fakeMetricsConfig)
				return m.Labels["a"] == "b" && m2.Labels["a"] == "c"
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := tc.yaml
			if y == "" {
				y = overrideBase
			}
			s, err := ParseSpec([]byte(y), "flow.yaml", reg, tc.sets)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(s) {
				out, _ := s.YAML()
				t.Errorf("after %q:\n%s", tc.sets, out)
			}
		})
	}
}

func TestOverrideErrors(t *testing.T) {
	reg := newTestRegistry()
	for _, tc := range []struct {
		name string
		sets []string
		want string
	}{
		{"unknown stage name", []string{"stages.agument.crop_scale=[0.2,1]"},
			`--set stages.agument.crop_scale=[0.2,1]: no stage named "agument" in stages (have: augment, collate); did you mean "augment"?`},
		{"unknown sink name", []string{"sinks.metric.every=1"},
			`--set sinks.metric.every=1: no stage named "metric" in sinks (have: metrics, more); did you mean "metrics"?`},
		{"index out of range", []string{"stages.2.batch_size=64"},
			"--set stages.2.batch_size=64: stages has 2 entries; there is no stages.2"},
		{"unknown shorthand", []string{"agument.workers=4"},
			`--set agument.workers=4: no top-level field or stage named "agument" (fields: name, description, seed, epochs, max_bad_samples, max_memory, source, stages, sinks; stages: fake, augment, collate, metrics, more); did you mean "augment"?`},
		{"no value", []string{"seed"},
			"--set seed: want path=value"},
		{"empty path element", []string{"stages..batch_size=1"},
			`--set stages..batch_size=1: empty element in path "stages..batch_size"`},
		{"block value", []string{"description=note: this"},
			`--set description=note: this: value "note: this" is not a YAML flow value (a scalar, [a, b] or {k: v}); quote it to set a string`},
		{"bad value", []string{"stages.augment.crop_scale=[0.2,"},
			`--set stages.augment.crop_scale=[0.2,: value "[0.2," is not YAML: did not find expected node content`},
		{"into a scalar", []string{"stages.collate.batch_size.x=1"},
			`--set stages.collate.batch_size.x=1: cannot set stages.collate.batch_size.x: stages.collate.batch_size is "256", not a mapping or a list`},
		// Errors found after the overrides name the override.
		{"unknown parameter", []string{"stages.collate.bogus=1"},
			`--set stages.collate.bogus=1: stages[1] (collate): unknown field "bogus" in stage collate (known: batch_size, last)`},
		{"wrong type", []string{"stages.collate.batch_size=abc"},
			`--set stages.collate.batch_size=abc: stages[1] (collate).batch_size: cannot use "abc" as int`},
		{"element type", []string{"stages.augment.crop_scale=[0.2, abc]"},
			`--set stages.augment.crop_scale=[0.2, abc]: stages[0] (augment).crop_scale[1]: cannot use "abc" as float64`},
		{"range", []string{"epochs=0"},
			"--set epochs=0: epochs: must be ≥ 1, got 0"},
		{"validate", []string{"stages.collate.last=keep"},
			`--set stages.collate.last=keep: stages[1] (collate).last: want "drop" or "pad", got "keep"`},
		{"unknown kind", []string{"stages.1.kind=colate"},
			`--set stages.1.kind=colate: stages[1].kind: unknown stage kind "colate" (known: augment, collate, shuffle); did you mean "collate"?`},
		{"first error wins", []string{"seed=1", "stages.x.y=1", "stages.y.y=1"},
			`--set stages.x.y=1: no stage named "x" in stages (have: augment, collate)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSpec([]byte(overrideBase), "flow.yaml", reg, tc.sets)
			if err == nil {
				out, _ := s.YAML()
				t.Fatalf("ParseSpec succeeded:\n%s\nwant error %q", out, tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("ParseSpec error\n got: %s\nwant: %s", err, tc.want)
			}
		})
	}
}

func TestApplyOverrides(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(overrideBase), &doc); err != nil {
		t.Fatal(err)
	}
	if err := ApplyOverrides(&doc, []string{"stages.collate.batch_size=64", "sinks.more.every=1"}); err != nil {
		t.Fatal(err)
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "batch_size: 64") || !strings.Contains(string(out), "every: 1") {
		t.Errorf("after ApplyOverrides:\n%s", out)
	}
	err = ApplyOverrides(&doc, []string{"stages.nope.x=1"})
	var se *SpecError
	if !errors.As(err, &se) || se.Set != "stages.nope.x=1" {
		t.Errorf("ApplyOverrides error = %#v, want a *SpecError naming the override", err)
	}
	// An empty document gets a mapping to hold the overrides.
	var empty yaml.Node
	if err := ApplyOverrides(&empty, []string{"seed=2"}); err != nil {
		t.Fatal(err)
	}
	if out, _ := yaml.Marshal(&empty); string(out) != "seed: 2\n" {
		t.Errorf("empty document after seed=2: %q", out)
	}
}
