package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// Fake stage kinds for the spec tests. They record what they were built
// with and do nothing.

type fakeKindStage struct {
	kind string
	cfg  any
	env  BuildEnv
}

func (*fakeKindStage) Run(context.Context, *Inbox, *Outbox) error { return nil }

var _ Stage = (*fakeKindStage)(nil)

func fakeKindBuild(kind string) func(any, BuildEnv) (Stage, error) {
	return func(cfg any, env BuildEnv) (Stage, error) {
		return &fakeKindStage{kind: kind, cfg: cfg, env: env}, nil
	}
}

type fakeSourceConfig struct {
	// Path is the file to read. Required.
	Path string `yaml:"path"`
	// Columns are the columns to read. Default: all.
	Columns []string `yaml:"columns"`
	// Limit is the number of rows to read. Default 0: all.
	Limit int `yaml:"limit"`
}

func (c *fakeSourceConfig) Validate() error {
	if c.Path == "" {
		return &FieldError{Field: "path", Msg: "required"}
	}
	if c.Limit < 0 {
		return &FieldError{Field: "limit", Msg: fmt.Sprintf("must be ≥ 0, got %d", c.Limit)}
	}
	return nil
}

type fakeColor struct {
	// Brightness is the strength of brightness jitter. Default 0: none.
	Brightness float64 `yaml:"brightness"`
	// Contrast is the strength of contrast jitter. Default 0: none.
	Contrast float64 `yaml:"contrast"`
}

type fakeAugmentConfig struct {
	// Workers is the number of goroutines. Default 2.
	Workers int `yaml:"workers"`
	// CropScale is the range of the crop's area. Default [0.2, 1].
	CropScale []float64 `yaml:"crop_scale"`
	// Flip flips half the views horizontally. Default true.
	Flip *bool `yaml:"flip"`
	// Color is the colour jitter. Default none.
	Color fakeColor `yaml:"color"`
	// Size is the output height and width. Default [28, 28].
	Size [2]int `yaml:"size"`
	// Timeout bounds the work on one sample. Default 0: none.
	Timeout time.Duration `yaml:"timeout"`
}

func (c *fakeAugmentConfig) Validate() error {
	if c.Workers < 0 {
		return &FieldError{Field: "workers", Msg: fmt.Sprintf("must be ≥ 0, got %d", c.Workers)}
	}
	if c.CropScale != nil && (len(c.CropScale) != 2 || !(0 < c.CropScale[0] && c.CropScale[0] <= c.CropScale[1] && c.CropScale[1] <= 1)) {
		return &FieldError{Field: "crop_scale", Msg: fmt.Sprintf("want [lo, hi] with 0 < lo ≤ hi ≤ 1, got %v", c.CropScale)}
	}
	if c.Color.Brightness < 0 {
		return fmt.Errorf("bad colour: %w", &FieldError{Field: "color.brightness", Msg: "must be ≥ 0"})
	}
	if c.Timeout < 0 {
		return errors.New("timeout is negative")
	}
	return nil
}

func (c *fakeAugmentConfig) WithDefaults() any {
	d := *c
	if d.Workers == 0 {
		d.Workers = 2
	}
	if d.CropScale == nil {
		d.CropScale = []float64{0.2, 1}
	}
	if d.Flip == nil {
		t := true
		d.Flip = &t
	}
	if d.Size == [2]int{} {
		d.Size = [2]int{28, 28}
	}
	return &d
}

type fakeCollateConfig struct {
	// BatchSize is the number of samples in a batch. Default 256.
	BatchSize int `yaml:"batch_size"`
	// Last says what happens to the last partial batch: "drop" (the
	// default) or "pad".
	Last string `yaml:"last"`
}

func (c *fakeCollateConfig) Validate() error {
	if c.BatchSize < 0 {
		return &FieldError{Field: "batch_size", Msg: fmt.Sprintf("must be ≥ 0, got %d", c.BatchSize)}
	}
	if c.Last != "" && c.Last != "drop" && c.Last != "pad" {
		return &FieldError{Field: "last", Msg: fmt.Sprintf(`want "drop" or "pad", got %q`, c.Last)}
	}
	return nil
}

type fakeMetricsConfig struct {
	// Every is the number of elements between two lines. Default 1.
	Every int `yaml:"every"`
	// Path is the file to write. Default: standard output.
	Path string `yaml:"path"`
	// Labels are added to every line. Default none.
	Labels map[string]string `yaml:"labels"`
	// Extra is passed on as it is. Default none.
	Extra map[string]any `yaml:"extra,omitempty"`
}

// newTestRegistry registers the fake kinds: sources fake and idx, stages
// augment (sample → pair), shuffle (sample → sample, no parameters) and
// collate (pair → batch), sinks metrics (any) and checkpoint (batch, no
// parameters).
func newTestRegistry() *Registry {
	r := NewRegistry()
	for _, k := range []Kind{
		{Name: "fake", Role: RoleSource, Doc: "reads a fake file", Produces: "sample",
			NewConfig: func() any { return new(fakeSourceConfig) }, Build: fakeKindBuild("fake")},
		{Name: "idx", Role: RoleSource, Doc: "reads IDX files", Produces: "sample",
			NewConfig: func() any { return new(fakeSourceConfig) }, Build: fakeKindBuild("idx")},
		{Name: "augment", Role: RoleStage, Doc: "makes two views", Accepts: "sample", Produces: "pair",
			NewConfig: func() any { return new(fakeAugmentConfig) }, Build: fakeKindBuild("augment")},
		{Name: "shuffle", Role: RoleStage, Doc: "shuffles", Accepts: "sample", Produces: "sample", Build: fakeKindBuild("shuffle")},
		{Name: "collate", Role: RoleStage, Doc: "makes batches", Accepts: "pair", Produces: "batch",
			NewConfig: func() any { return new(fakeCollateConfig) }, Build: fakeKindBuild("collate")},
		{Name: "metrics", Role: RoleSink, Doc: "writes metrics", Accepts: AnyElement,
			NewConfig: func() any { return new(fakeMetricsConfig) }, Build: fakeKindBuild("metrics")},
		{Name: "checkpoint", Role: RoleSink, Doc: "writes checkpoints", Accepts: "batch", Build: fakeKindBuild("checkpoint")},
	} {
		if err := r.Register(k); err != nil {
			panic(err)
		}
	}
	return r
}

func TestRegistry(t *testing.T) {
	r := newTestRegistry()
	var names []string
	for _, k := range r.Kinds() {
		names = append(names, k.Name)
	}
	if want := []string{"augment", "checkpoint", "collate", "fake", "idx", "metrics", "shuffle"}; !slices.Equal(names, want) {
		t.Errorf("Kinds() = %v, want %v", names, want)
	}
	if k, ok := r.Lookup("collate"); !ok || k.Role != RoleStage || k.Accepts != "pair" {
		t.Errorf(`Lookup("collate") = %+v, %v`, k, ok)
	}
	if _, ok := r.Lookup("nope"); ok {
		t.Error(`Lookup("nope") found a kind`)
	}
	if got := RoleSink.String(); got != "sink" {
		t.Errorf("RoleSink.String() = %q", got)
	}

	build := fakeKindBuild("x")
	type badName struct {
		Name string `yaml:"name"`
	}
	type twice struct {
		A int `yaml:"a"`
		B int `yaml:"a"`
	}
	for _, tc := range []struct {
		name string
		kind Kind
		want string
	}{
		{"duplicate", Kind{Name: "augment", Role: RoleStage, Accepts: "sample", Produces: "pair", Build: build}, `"augment" is already registered`},
		{"empty name", Kind{Role: RoleSink, Accepts: "batch", Build: build}, "name must be"},
		{"dotted name", Kind{Name: "a.b", Role: RoleSink, Accepts: "batch", Build: build}, "name must be"},
		{"numeric name", Kind{Name: "7", Role: RoleSink, Accepts: "batch", Build: build}, "name must be"},
		{"no role", Kind{Name: "x", Accepts: "batch", Build: build}, "no role"},
		{"no build", Kind{Name: "x", Role: RoleSink, Accepts: "batch"}, "no Build"},
		{"source accepts", Kind{Name: "x", Role: RoleSource, Accepts: "sample", Produces: "sample", Build: build}, "a source accepts nothing"},
		{"stage produces nothing", Kind{Name: "x", Role: RoleStage, Accepts: "sample", Build: build}, "a stage must say"},
		{"sink produces", Kind{Name: "x", Role: RoleSink, Accepts: "batch", Produces: "batch", Build: build}, "a sink must say"},
		{"config not a pointer", Kind{Name: "x", Role: RoleSink, Accepts: "batch", Build: build,
			NewConfig: func() any { return fakeMetricsConfig{} }}, "must return a non-nil pointer to a struct"},
		{"nil config", Kind{Name: "x", Role: RoleSink, Accepts: "batch", Build: build,
			NewConfig: func() any { return (*fakeMetricsConfig)(nil) }}, "must return a non-nil pointer to a struct"},
		{"reserved field", Kind{Name: "x", Role: RoleSink, Accepts: "batch", Build: build,
			NewConfig: func() any { return new(badName) }}, `field "name" is reserved`},
		{"two fields one key", Kind{Name: "x", Role: RoleSink, Accepts: "batch", Build: build,
			NewConfig: func() any { return new(twice) }}, `two fields have the key "a"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := r.Register(tc.kind)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Register: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestRegistryWith(t *testing.T) {
	r := newTestRegistry()
	orig, _ := r.Lookup("collate")
	bound := orig
	bound.Build = fakeKindBuild("bound collate")
	extra := Kind{Name: "extra", Role: RoleSink, Accepts: "batch", Build: fakeKindBuild("extra")}
	w, err := r.With(bound, extra)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := w.Lookup("collate")
	st, _ := k.Build(nil, BuildEnv{})
	if got := st.(*fakeKindStage).kind; got != "bound collate" {
		t.Errorf("With's collate builds %q, want the bound one", got)
	}
	k, _ = r.Lookup("collate")
	if st, _ := k.Build(nil, BuildEnv{}); st.(*fakeKindStage).kind == "bound collate" {
		t.Error("With changed the registry it was called on")
	}
	if _, ok := w.Lookup("extra"); !ok {
		t.Error("With did not add a new kind")
	}
	if _, ok := w.Lookup("augment"); !ok {
		t.Error("With lost a kind it did not replace")
	}
	wrong := orig
	wrong.Produces = "pair"
	if _, err := r.With(wrong); err == nil || !strings.Contains(err.Error(), "keep the role and elements") {
		t.Errorf("a replacement with other elements: err = %v", err)
	}
	if _, err := r.With(Kind{Name: "x"}); err == nil {
		t.Error("a malformed kind was accepted")
	}
}
