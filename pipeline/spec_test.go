package pipeline

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

const validSpec = `name: data
description: the tests' flow
seed: 1
epochs: 2
max_bad_samples: 10
source: {kind: fake, path: data/train.parquet}
stages:
  - kind: augment
    workers: 3
    crop_scale: [0.3, 1.0]
    color: {brightness: 0.4}
    timeout: 2s
  - {kind: collate, batch_size: 256, last: drop}
sinks:
  - {kind: metrics, every: 10, labels: {run: a}}
  - {kind: checkpoint, name: ckpt}
`

// validSpecYAML is validSpec as Spec.YAML writes it.
const validSpecYAML = `name: data
description: the tests' flow
seed: 1
epochs: 2
max_bad_samples: 10
source:
  name: fake
  kind: fake
  path: data/train.parquet
  columns: []
  limit: 0
stages:
  - name: augment
    kind: augment
    workers: 3
    crop_scale: [0.3, 1]
    flip: true
    color:
      brightness: 0.4
      contrast: 0
    size: [28, 28]
    timeout: 2s
  - name: collate
    kind: collate
    batch_size: 256
    last: drop
sinks:
  - name: metrics
    kind: metrics
    every: 10
    path: ""
    labels:
      run: a
  - name: ckpt
    kind: checkpoint
`

func TestParseSpec(t *testing.T) {
	reg := newTestRegistry()
	s, err := ParseSpec([]byte(validSpec), "flow.yaml", reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := &Spec{
		Name: "data", Description: "the tests' flow", Seed: 1, Epochs: 2, MaxBadSamples: 10,
		Source: StageSpec{Name: "fake", Kind: "fake", Config: &fakeSourceConfig{Path: "data/train.parquet"}},
		Stages: []StageSpec{
			{Name: "augment", Kind: "augment", Config: &fakeAugmentConfig{Workers: 3, CropScale: []float64{0.3, 1}, Color: fakeColor{Brightness: 0.4}, Timeout: 2 * time.Second}},
			{Name: "collate", Kind: "collate", Config: &fakeCollateConfig{BatchSize: 256, Last: "drop"}},
		},
		Sinks: []StageSpec{
			{Name: "metrics", Kind: "metrics", Config: &fakeMetricsConfig{Every: 10, Labels: map[string]string{"run": "a"}}},
			{Name: "ckpt", Kind: "checkpoint"},
		},
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("ParseSpec =\n%#v\nwant\n%#v", s, want)
	}

	y, err := s.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if string(y) != validSpecYAML {
		t.Errorf("YAML() =\n%s\nwant\n%s", y, validSpecYAML)
	}
	// What YAML writes reads back to the same spec, defaults filled in.
	s2, err := ParseSpec(y, "normal.yaml", reg, nil)
	if err != nil {
		t.Fatalf("reading YAML() back: %v", err)
	}
	y2, err := s2.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if string(y2) != string(y) {
		t.Errorf("YAML() after a round trip =\n%s\nwant\n%s", y2, y)
	}
	if got := s2.Stages[0].Config.(*fakeAugmentConfig); got.Workers != 3 || *got.Flip != true || got.Size != [2]int{28, 28} {
		t.Errorf("augment config after a round trip = %+v", got)
	}
}

func TestParseSpecDefaults(t *testing.T) {
	reg := newTestRegistry()
	for _, tc := range []struct {
		name, yaml string
		want       *Spec
	}{
		{"minimal", "source: {kind: fake, path: x}", &Spec{Epochs: 1,
			Source: StageSpec{Name: "fake", Kind: "fake", Config: &fakeSourceConfig{Path: "x"}}}},
		{"nulls mean defaults", "epochs: ~\nseed:\nstages:\nsinks: ~\nsource: {kind: fake, path: x, columns: ~}", &Spec{Epochs: 1,
			Source: StageSpec{Name: "fake", Kind: "fake", Config: &fakeSourceConfig{Path: "x"}}}},
		{"no limit", "max_bad_samples: -1\nsource: {kind: fake, path: x}", &Spec{Epochs: 1, MaxBadSamples: -1,
			Source: StageSpec{Name: "fake", Kind: "fake", Config: &fakeSourceConfig{Path: "x"}}}},
		{"kind without parameters", "source: {kind: fake, path: x}\nstages: [{kind: shuffle}]", &Spec{Epochs: 1,
			Source: StageSpec{Name: "fake", Kind: "fake", Config: &fakeSourceConfig{Path: "x"}},
			Stages: []StageSpec{{Name: "shuffle", Kind: "shuffle"}}}},
		{"anchors and merge keys", `source: {<<: &c {kind: fake, path: x}, limit: 5}
stages:
  - {kind: augment, crop_scale: &cs [0.5, 1]}
  - {kind: collate}
sinks:
  - &m {kind: metrics, every: 2, labels: &l {a: b}}
  - {<<: *m, name: again, labels: *l, path: p}
`, &Spec{Epochs: 1,
			Source: StageSpec{Name: "fake", Kind: "fake", Config: &fakeSourceConfig{Path: "x", Limit: 5}},
			Stages: []StageSpec{
				{Name: "augment", Kind: "augment", Config: &fakeAugmentConfig{CropScale: []float64{0.5, 1}}},
				{Name: "collate", Kind: "collate", Config: &fakeCollateConfig{}},
			},
			Sinks: []StageSpec{
				{Name: "metrics", Kind: "metrics", Config: &fakeMetricsConfig{Every: 2, Labels: map[string]string{"a": "b"}}},
				{Name: "again", Kind: "metrics", Config: &fakeMetricsConfig{Every: 2, Labels: map[string]string{"a": "b"}, Path: "p"}},
			}}},
		{"whole numbers as floats", "source: {kind: fake, path: x, limit: 1e3}", &Spec{Epochs: 1,
			Source: StageSpec{Name: "fake", Kind: "fake", Config: &fakeSourceConfig{Path: "x", Limit: 1000}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSpec([]byte(tc.yaml), "flow.yaml", reg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(s, tc.want) {
				t.Errorf("ParseSpec =\n%#v\nwant\n%#v", s, tc.want)
			}
		})
	}
}

// specErrorTests are specs that ParseSpec refuses, with the whole message.
// The fuzz test starts from them too.
var specErrorTests = []struct {
	name, yaml string
	sets       []string
	want       string
}{
	// Syntax and shape.
	{"syntax", "seed: 1\nsource: {kind: fake\n", nil,
		"flow.yaml:2: did not find expected ',' or '}'"},
	{"empty", "", nil,
		"flow.yaml: missing source (known source kinds: fake, idx)"},
	{"not a mapping", "- a\n- b\n", nil,
		"flow.yaml:1: a flow spec is a mapping of name, description, seed, epochs, max_bad_samples, max_memory, source, stages, sinks; got a list"},
	{"two documents", "source: {kind: fake, path: x}\n---\nseed: 2\n", nil,
		"flow.yaml:2: more than one YAML document; a flow spec is one"},
	{"duplicate key", "seed: 1\nseed: 2\n", nil,
		"flow.yaml:2: seed: duplicate key (also on line 1)"},
	{"alias cycle", "source: &s {kind: fake, path: x, columns: [*s]}\n", nil,
		"flow.yaml:1: source (fake).columns[0]: alias refers to a value that contains it"},

	// (1) Top-level fields.
	{"unknown top-level field", "seed: 1\nsed: 2\n", nil,
		`flow.yaml:2: unknown field "sed" (known: name, description, seed, epochs, max_bad_samples, max_memory, source, stages, sinks); did you mean "seed"?`},
	{"top-level type", "seed: abc\n", nil,
		`flow.yaml:1: seed: cannot use "abc" as int64`},
	{"top-level list", "name: [a]\n", nil,
		`flow.yaml:1: name: cannot use a list as string`},
	{"epochs zero", "seed: 1\nepochs: 0\nsource: {kind: fake, path: x}\n", nil,
		"flow.yaml:2: epochs: must be ≥ 1, got 0"},
	{"max_bad_samples", "max_bad_samples: -2\nsource: {kind: fake, path: x}\n", nil,
		"flow.yaml:1: max_bad_samples: must be ≥ -1 (-1 means no limit), got -2"},
	{"stages not a list", "source: {kind: fake, path: x}\nstages: {kind: augment}\n", nil,
		"flow.yaml:2: stages: want a list of stages, got a mapping"},

	// (2) Kinds and their places.
	{"unknown kind", "source: {kind: fake, path: x}\nstages:\n  - kind: agument\n", nil,
		`flow.yaml:3: stages[0].kind: unknown stage kind "agument" (known: augment, collate, shuffle); did you mean "augment"?`},
	{"unknown source kind", "source: {kind: parquet}\n", nil,
		`flow.yaml:1: source.kind: unknown source kind "parquet" (known: fake, idx)`},
	{"sink kind in stages", "source: {kind: fake, path: x}\nstages:\n  - {kind: augment}\n  - {kind: metrics}\n", nil,
		`flow.yaml:4: stages[1].kind: "metrics" is a sink kind; it belongs under sinks, not stages (known stage kinds: augment, collate, shuffle)`},
	{"stage kind as source", "source: {kind: augment}\n", nil,
		`flow.yaml:1: source.kind: "augment" is a stage kind; it belongs under stages, not source (known source kinds: fake, idx)`},
	{"missing kind", "source: {kind: fake, path: x}\nsinks:\n  - {every: 3}\n", nil,
		"flow.yaml:3: sinks[0].kind: missing (known sink kinds: checkpoint, metrics)"},
	{"stage not a mapping", "source: {kind: fake, path: x}\nstages: [collate]\n", nil,
		`flow.yaml:2: stages[0]: want a mapping of kind and parameters, got "collate"`},
	{"kind not a string", "source: {kind: [fake]}\n", nil,
		"flow.yaml:1: source.kind: cannot use a list as string"},

	// (3) Strict decoding of parameters.
	{"unknown parameter", "source: {kind: fake, path: x}\nstages:\n  - kind: augment\n    cropp_scale: [0.3, 1]\n", nil,
		`flow.yaml:4: stages[0] (augment): unknown field "cropp_scale" in stage augment (known: color, crop_scale, flip, size, timeout, workers); did you mean "crop_scale"?`},
	{"unknown nested parameter", "source: {kind: fake, path: x}\nstages:\n  - kind: augment\n    color: {brightnes: 1}\n", nil,
		`flow.yaml:4: stages[0] (augment).color: unknown field "brightnes" (known: brightness, contrast); did you mean "brightness"?`},
	{"parameter of a kind without any", "source: {kind: fake, path: x}\nstages:\n  - {kind: shuffle, seed: 3}\n", nil,
		`flow.yaml:3: stages[0] (shuffle): unknown field "seed": stage kind shuffle takes no parameters`},
	{"scalar for a list", "source: {kind: fake, path: x}\nstages:\n  - kind: augment\n    workers: 2\n    crop_scale: abc\n", nil,
		`flow.yaml:5: stages[0] (augment).crop_scale: cannot use "abc" as []float64`},
	{"element type", "source: {kind: fake, path: x}\nstages:\n  - kind: augment\n    crop_scale:\n      - 0.3\n      - abc\n", nil,
		`flow.yaml:6: stages[0] (augment).crop_scale[1]: cannot use "abc" as float64`},
	{"fraction for an int", "source: {kind: fake, path: x}\nstages: [{kind: augment}, {kind: collate, batch_size: 2.5}]\n", nil,
		`flow.yaml:2: stages[1] (collate).batch_size: cannot use "2.5" as int`},
	{"pointer", "source: {kind: fake, path: x}\nstages: [{kind: augment, flip: maybe}]\n", nil,
		`flow.yaml:2: stages[0] (augment).flip: cannot use "maybe" as bool`},
	{"array length", "source: {kind: fake, path: x}\nstages: [{kind: augment, size: [1, 2, 3]}]\n", nil,
		"flow.yaml:2: stages[0] (augment).size: want 2 values, got 3"},
	{"duration", "source: {kind: fake, path: x}\nstages: [{kind: augment, timeout: 5 parsecs}]\n", nil,
		`flow.yaml:2: stages[0] (augment).timeout: cannot use "5 parsecs" as time.Duration`},
	{"struct from a scalar", "source: {kind: fake, path: x}\nstages: [{kind: augment, color: red}]\n", nil,
		`flow.yaml:2: stages[0] (augment).color: cannot use "red" as pipeline.fakeColor (want a mapping)`},
	{"map value", "source: {kind: fake, path: x}\nsinks: [{kind: metrics, labels: {run: [a]}}]\n", nil,
		"flow.yaml:2: sinks[0] (metrics).labels.run: cannot use a list as string"},
	{"named stage", "source: {kind: fake, path: x}\nstages: [{kind: augment, name: strong, workers: many}]\n", nil,
		`flow.yaml:2: stages[0] (strong: augment).workers: cannot use "many" as int`},

	// (4) Ranges: the config's Validate.
	{"field error", "source: {kind: fake, path: x}\nstages:\n  - kind: augment\n    workers: 2\n    crop_scale: [0.5, 0.2]\n", nil,
		"flow.yaml:5: stages[0] (augment).crop_scale: want [lo, hi] with 0 < lo ≤ hi ≤ 1, got [0.5 0.2]"},
	{"wrapped nested field error", "source: {kind: fake, path: x}\nstages:\n  - kind: augment\n    color:\n      contrast: 1\n      brightness: -1\n", nil,
		"flow.yaml:6: stages[0] (augment).color.brightness: must be ≥ 0"},
	{"field error on a default", "source:\n  kind: fake\n  limit: 2\n", nil,
		"flow.yaml:2: source (fake).path: required"},
	{"plain error", "source: {kind: fake, path: x}\nstages:\n  - kind: augment\n    timeout: -1s\n", nil,
		"flow.yaml:3: stages[0] (augment): timeout is negative"},

	// Names.
	{"duplicate names", "source: {kind: fake, path: x}\nstages:\n  - {kind: augment}\n  - {kind: augment}\n", nil,
		`flow.yaml:4: stages[1] (augment): duplicate stage name "augment" (also stages[0]); give one of them a name:`},
	{"bad name", "source: {kind: fake, path: x}\nsinks: [{kind: metrics, name: a.b}]\n", nil,
		`flow.yaml:2: sinks[0].name: "a.b" is not a valid name (letters, digits, '_' or '-', starting with a letter)`},

	// (5) Neighbours.
	{"neighbours", "source: {kind: fake, path: x}\nstages:\n  - {kind: augment}\n  - {kind: augment, name: again}\n", nil,
		"flow.yaml:4: stages[1] (again: augment): accepts sample, but stages[0] (augment) before it produces pair"},
	{"first stage", "source: {kind: fake, path: x}\nstages:\n  - {kind: collate}\n", nil,
		"flow.yaml:3: stages[0] (collate): accepts pair, but source (fake) before it produces sample"},
	{"sink", "source: {kind: fake, path: x}\nstages: [{kind: augment}]\nsinks:\n  - kind: metrics\n  - kind: checkpoint\n", nil,
		"flow.yaml:5: sinks[1] (checkpoint): accepts batch, but stages[0] (augment) before it produces pair"},
}

func TestParseSpecErrors(t *testing.T) {
	reg := newTestRegistry()
	for _, tc := range specErrorTests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSpec([]byte(tc.yaml), "flow.yaml", reg, tc.sets)
			if err == nil {
				t.Fatalf("ParseSpec = %+v, want error %q", s, tc.want)
			}
			if s != nil {
				t.Errorf("ParseSpec returned a spec with its error")
			}
			if err.Error() != tc.want {
				t.Errorf("ParseSpec error\n got: %s\nwant: %s", err, tc.want)
			}
			var se *SpecError
			if !errors.As(err, &se) {
				t.Errorf("error is %T, want *SpecError", err)
			}
		})
	}
}

func TestFieldErrorUnwraps(t *testing.T) {
	_, err := ParseSpec([]byte("source: {kind: fake, path: x, limit: -1}"), "f.yaml", newTestRegistry(), nil)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "limit" {
		t.Fatalf("errors.As(%v, *FieldError) = %v, %+v", err, errors.As(err, &fe), fe)
	}
	if want := "f.yaml:1: source (fake).limit: must be ≥ 0, got -1"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if got := fe.Error(); got != "limit: must be ≥ 0, got -1" {
		t.Errorf("FieldError.Error() = %q", got)
	}
}

func TestBuild(t *testing.T) {
	reg := newTestRegistry()
	s, err := ParseSpec([]byte(validSpec), "flow.yaml", reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	env := s.Env()
	if env.Seed != 1 || env.Epochs != 2 {
		t.Fatalf("Env() = %+v", env)
	}
	stages, err := s.Build(reg, env)
	if err != nil {
		t.Fatal(err)
	}
	type got struct {
		Name, Kind string
		Role       Role
	}
	var gots []got
	for _, ns := range stages {
		gots = append(gots, got{ns.Name, ns.Kind, ns.Role})
		fs := ns.Stage.(*fakeKindStage)
		if fs.kind != ns.Kind || fs.env.Seed != env.Seed || fs.env.Epochs != env.Epochs {
			t.Errorf("stage %s built as %s with %+v", ns.Name, fs.kind, fs.env)
		}
	}
	want := []got{{"fake", "fake", RoleSource}, {"augment", "augment", RoleStage}, {"collate", "collate", RoleStage},
		{"metrics", "metrics", RoleSink}, {"ckpt", "checkpoint", RoleSink}}
	if !reflect.DeepEqual(gots, want) {
		t.Errorf("Build = %v, want %v", gots, want)
	}
	if cfg := stages[2].Stage.(*fakeKindStage).cfg; !reflect.DeepEqual(cfg, &fakeCollateConfig{BatchSize: 256, Last: "drop"}) {
		t.Errorf("collate built with %#v", cfg)
	}
	if cfg := stages[4].Stage.(*fakeKindStage).cfg; cfg != nil {
		t.Errorf("checkpoint built with %#v, want nil", cfg)
	}
}

func TestBuildGoSpec(t *testing.T) {
	reg := newTestRegistry()
	if err := reg.Register(Kind{Name: "broken", Role: RoleSink, Accepts: "batch",
		Build: func(any, BuildEnv) (Stage, error) { return nil, errors.New("no disk") }}); err != nil {
		t.Fatal(err)
	}
	src := StageSpec{Kind: "fake", Config: fakeSourceConfig{Path: "x"}} // a value works as well as a pointer
	for _, tc := range []struct {
		name string
		spec Spec
		want string // error, or "" for none
	}{
		{"defaults", Spec{Epochs: 1, Source: src, Stages: []StageSpec{{Kind: "augment"}, {Kind: "collate"}}}, ""},
		{"epochs", Spec{Source: src}, "epochs: must be ≥ 1, got 0"},
		{"no source", Spec{Epochs: 1}, "source: missing (known source kinds: fake, idx)"},
		{"unknown kind", Spec{Epochs: 1, Source: src, Sinks: []StageSpec{{Kind: "metric"}}},
			`sinks[0].kind: unknown sink kind "metric" (known: broken, checkpoint, metrics); did you mean "metrics"?`},
		{"config type", Spec{Epochs: 1, Source: src, Stages: []StageSpec{{Kind: "augment", Config: &fakeCollateConfig{}}}},
			"stages[0] (augment): config is *pipeline.fakeCollateConfig, want *pipeline.fakeAugmentConfig"},
		{"config for a kind without", Spec{Epochs: 1, Source: src, Stages: []StageSpec{{Kind: "shuffle", Config: &fakeCollateConfig{}}}},
			"stages[0] (shuffle): kind shuffle takes no config, got *pipeline.fakeCollateConfig"},
		{"validate", Spec{Epochs: 1, Source: StageSpec{Kind: "fake"}}, "source (fake).path: required"},
		{"build error", Spec{Epochs: 1, Source: src, Stages: []StageSpec{{Kind: "augment"}, {Kind: "collate"}}, Sinks: []StageSpec{{Kind: "broken"}}},
			"sinks[0] (broken): no disk"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stages, err := tc.spec.Build(reg, BuildEnv{Epochs: 1})
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if cfg := stages[1].Stage.(*fakeKindStage).cfg; !reflect.DeepEqual(cfg, &fakeAugmentConfig{}) {
					t.Errorf("augment built with %#v, want its zero config", cfg)
				}
				if cfg := stages[0].Stage.(*fakeKindStage).cfg; !reflect.DeepEqual(cfg, &fakeSourceConfig{Path: "x"}) {
					t.Errorf("source built with %#v", cfg)
				}
				return
			}
			if err == nil || err.Error() != tc.want {
				t.Errorf("Build error\n got: %v\nwant: %s", err, tc.want)
			}
		})
	}
}

func TestSpecYAMLRefusesBadConfig(t *testing.T) {
	s := &Spec{Epochs: 1, Source: StageSpec{Kind: "fake", Config: 3}}
	if _, err := s.YAML(); err == nil || !strings.Contains(err.Error(), "does not encode as a mapping") {
		t.Errorf("YAML() error = %v", err)
	}
}
