package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/contrastream/contrastream/flows"
	"github.com/contrastream/contrastream/pipeline"
)

func runFlows(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("flows", stderr)
	kinds := fs.Bool("kinds", false, "list the stage kinds a flow can use")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case *kinds:
		for _, k := range pipeline.DefaultRegistry.Kinds() {
			elems := k.Accepts + " → " + k.Produces
			fmt.Fprintf(stdout, "%-10s %-7s %-16s %s\n", k.Name, k.Role, strings.TrimSpace(elems), k.Doc)
		}
		return nil
	case fs.NArg() == 0:
		for _, name := range flows.Names() {
			spec, err := flows.Load(name, nil)
			if err != nil {
				return fmt.Errorf("prebuilt flow %s: %w", name, err)
			}
			fmt.Fprintf(stdout, "%-10s %s\n", name, spec.Description)
		}
		return nil
	case fs.NArg() == 1:
		b, err := flows.YAML(fs.Arg(0))
		if err != nil {
			return err
		}
		_, err = stdout.Write(b)
		return err
	}
	return fmt.Errorf("%w: want at most one flow name", errUsage)
}
