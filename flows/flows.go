package flows

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/contrastream/contrastream/pipeline"
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
// file (anything with a '/' or ending in .yaml or .yml). overrides are
// "path=value" strings (the CLI's --set) applied before validation. The
// spec is checked against pipeline.DefaultRegistry, where this package
// registers its kinds.
func Load(nameOrFile string, overrides []string) (*pipeline.Spec, error) {
	var (
		data []byte
		err  error
		file = nameOrFile
	)
	if strings.ContainsRune(nameOrFile, '/') || strings.HasSuffix(nameOrFile, ".yaml") || strings.HasSuffix(nameOrFile, ".yml") {
		data, err = os.ReadFile(nameOrFile)
	} else {
		data, err = YAML(nameOrFile)
		file = path.Join("flows", nameOrFile+".yaml")
	}
	if err != nil {
		return nil, err
	}
	return pipeline.ParseSpec(data, file, nil, overrides)
}

// Build makes a runnable flow of a validated spec: its stages in order and,
// when the spec has several sinks, one sink stage that hands every element
// to each of them (see pipeline.Tee).
func Build(spec *pipeline.Spec, opts pipeline.Options) (*pipeline.Flow, error) {
	env := spec.Env()
	stages, err := spec.Build(nil, env)
	if err != nil {
		return nil, err
	}
	opts.MaxBadSamples = spec.MaxBadSamples
	f := pipeline.New(opts)
	var sinks []pipeline.NamedStage
	for _, s := range stages {
		if s.Role == pipeline.RoleSink {
			sinks = append(sinks, s)
			continue
		}
		f.Add(s.Name, s.Stage)
	}
	switch len(sinks) {
	case 0:
	case 1:
		f.Add(sinks[0].Name, sinks[0].Stage)
	default:
		names := make([]string, len(sinks))
		ss := make([]pipeline.Stage, len(sinks))
		for i, s := range sinks {
			names[i], ss[i] = s.Name, s.Stage
		}
		f.Add(strings.Join(names, "+"), pipeline.Tee(ss...))
	}
	return f, nil
}
