package pipeline

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strings"
	"testing"
)

// The doc examples use the kinds that package flows registers, which this
// package cannot import. docRegistry mirrors their names, places and the
// config fields the examples use, so that the examples are checked.
type (
	docDatasetConfig struct {
		Path        string `yaml:"path"`
		Format      string `yaml:"format"`
		Order       string `yaml:"order"`
		ShuffleRows int    `yaml:"shuffle_rows"`
	}
	docAugmentConfig struct {
		Crop struct {
			Scale [2]float64 `yaml:"scale"`
			Ratio [2]float64 `yaml:"ratio"`
			P     *float64   `yaml:"p"`
		} `yaml:"crop"`
		FlipP  *float64 `yaml:"flip_p"`
		Jitter struct {
			Brightness *float64 `yaml:"brightness"`
			Contrast   *float64 `yaml:"contrast"`
		} `yaml:"jitter"`
		Mean    []float64 `yaml:"mean"`
		Std     []float64 `yaml:"std"`
		Workers int       `yaml:"workers"`
	}
	docCollateConfig struct {
		BatchSize int    `yaml:"batch_size"`
		Last      string `yaml:"last"`
	}
)

func docRegistry() *Registry {
	r := NewRegistry()
	for _, k := range []Kind{
		{Name: "dataset", Role: RoleSource, Produces: "sample",
			NewConfig: func() any { return new(docDatasetConfig) }, Build: fakeKindBuild("dataset")},
		{Name: "augment", Role: RoleStage, Accepts: "sample", Produces: "pair",
			NewConfig: func() any { return new(docAugmentConfig) }, Build: fakeKindBuild("augment")},
		{Name: "collate", Role: RoleStage, Accepts: "pair", Produces: "batch",
			NewConfig: func() any { return new(docCollateConfig) }, Build: fakeKindBuild("collate")},
		{Name: "discard", Role: RoleSink, Accepts: AnyElement, Build: fakeKindBuild("discard")},
	} {
		if err := r.Register(k); err != nil {
			panic(err)
		}
	}
	return r
}

// docOf returns the doc comment of the declaration called name in file.
func docOf(t *testing.T, file, name string) string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if d.Name.Name == name && d.Recv == nil {
				return d.Doc.Text()
			}
		case *ast.GenDecl:
			for _, s := range d.Specs {
				if ts, ok := s.(*ast.TypeSpec); ok && ts.Name.Name == name {
					return d.Doc.Text()
				}
			}
		}
	}
	t.Fatalf("%s: no declaration %s", file, name)
	return ""
}

// codeLines returns the indented (code) lines of doc, without the indent.
func codeLines(doc string) []string {
	var out []string
	for l := range strings.Lines(doc) {
		if code, ok := strings.CutPrefix(l, "\t"); ok {
			out = append(out, strings.TrimSuffix(code, "\n"))
		}
	}
	return out
}

// TestDocExamples parses the spec in Spec's doc, applies each override in
// ApplyOverrides' doc to it, and checks the error in ParseSpec's doc.
func TestDocExamples(t *testing.T) {
	reg := docRegistry()
	spec := strings.Join(codeLines(docOf(t, "spec.go", "Spec")), "\n") + "\n"
	s, err := ParseSpec([]byte(spec), "flow.yaml", reg, nil)
	if err != nil {
		t.Fatalf("Spec's example: %v\n%s", err, spec)
	}
	if got := s.Stages[0].Config.(*docAugmentConfig).Crop.Scale; got != [2]float64{0.3, 1} {
		t.Errorf("crop.scale = %v", got)
	}

	sets := codeLines(docOf(t, "override.go", "ApplyOverrides"))
	doc := docOf(t, "override.go", "ApplyOverrides")
	for _, short := range []string{"augment.workers=4", "collate.last=pad"} {
		if !strings.Contains(doc, short) {
			t.Errorf("ApplyOverrides' doc no longer shows %s", short)
		}
		sets = append(sets, short)
	}
	if len(sets) < 5 {
		t.Fatalf("ApplyOverrides' doc shows %d overrides: %q", len(sets), sets)
	}
	for _, set := range sets {
		if _, err := ParseSpec([]byte(spec), "flow.yaml", reg, []string{set}); err != nil {
			t.Errorf("override %s from ApplyOverrides' doc: %v", set, err)
		}
	}

	want := codeLines(docOf(t, "spec.go", "ParseSpec"))
	bad := strings.Replace(spec, "crop: {scale: [0.3, 1.0]}", "crop: {scale: abc}", 1)
	if bad == spec {
		t.Fatal("Spec's example has no crop scale to break")
	}
	_, err = ParseSpec([]byte(bad), "flow.yaml", reg, nil)
	if len(want) != 1 || err == nil || err.Error() != want[0] {
		t.Errorf("ParseSpec's doc shows %q; a bad crop scale in Spec's example gives %v", want, err)
	}
}
