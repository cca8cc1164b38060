package pipeline

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// ApplyOverrides applies overrides of the form "path=value" (the CLI's
// --set) to the YAML tree of a flow spec, before it is decoded. root is
// the document node or its top-level mapping.
//
// A path is dot-separated. A list is indexed by position or, for a list of
// stages, by a stage's name (its kind when it has none):
//
//	seed=3
//	source.path=data/val.parquet
//	stages.augment.crop.scale=[0.2,1]
//	stages.1.batch_size=64
//	sinks.0.kind=discard
//
// A path that does not start with a top-level field starts with a stage's
// name: augment.workers=4 is stages.augment.workers=4, collate.last=pad is
// stages.collate.last=pad.
//
// The value is YAML in flow style: a scalar, [a, b] or {k: v}; an empty
// value is null, which means the default. Setting a key that is not there
// adds it, so a stage's parameter can be set that its spec leaves out
// (decoding then refuses unknown ones); a stage name or an index that is not
// there is an error. A value shared through a YAML alias is copied before it
// is changed, so the change stays where the path points.
//
// The error is a *SpecError that names the override.
func ApplyOverrides(root *yaml.Node, overrides []string) error {
	return applyOverrides(root, overrides, nil)
}

// applyOverrides is ApplyOverrides that records in made every node it
// adds, with the override that made it.
func applyOverrides(root *yaml.Node, overrides []string, made map[*yaml.Node]string) error {
	if len(overrides) == 0 {
		return nil
	}
	m := root
	if root.Kind == 0 { // what yaml.Unmarshal leaves for an empty document
		root.Kind = yaml.DocumentNode
	}
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			root.Content = []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}
		}
		m = root.Content[0]
	}
	if m.Kind != yaml.MappingNode {
		return &SpecError{Line: m.Line, Err: fmt.Errorf("cannot apply overrides: a flow spec is a mapping, got %s", describeNode(m))}
	}
	for _, o := range overrides {
		if err := applyOverride(m, o, made); err != nil {
			return &SpecError{Set: o, Err: err}
		}
	}
	return nil
}

func applyOverride(root *yaml.Node, o string, made map[*yaml.Node]string) error {
	path, value, ok := strings.Cut(o, "=")
	if !ok {
		return errors.New("want path=value")
	}
	path = strings.TrimSpace(path)
	segs := strings.Split(path, ".")
	for _, s := range segs {
		if s == "" {
			return fmt.Errorf("empty element in path %q", path)
		}
	}
	val, err := parseOverrideValue(value)
	if err != nil {
		return err
	}
	record := func(n *yaml.Node) {
		if made != nil {
			walkNodes(n, func(n *yaml.Node) { made[n] = o })
		}
	}
	record(val)
	if !slices.Contains(specFields, segs[0]) {
		if segs, err = stageShorthand(root, segs); err != nil {
			return err
		}
	}

	cur, shared := root, false
	for i, seg := range segs {
		last := i == len(segs)-1
		where := strings.Join(segs[:i], ".")
		var slot **yaml.Node
		switch cur.Kind {
		case yaml.MappingNode:
			j := keyIndex(cur, seg)
			if j < 0 {
				if v := mergedValue(cur, seg, 0); v != nil {
					// A key that only a << merge sets: copy it here, so
					// the change does not reach the merged mapping.
					k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: seg}
					record(k)
					cur.Content = append(cur.Content, k, v)
					j = len(cur.Content) - 1
					shared = true
				}
			}
			if j < 0 {
				k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: seg}
				var v *yaml.Node
				if last {
					v = val
				} else {
					v = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
				}
				record(k)
				record(v)
				cur.Content = append(cur.Content, k, v)
				j = len(cur.Content) - 1
			} else if last {
				cur.Content[j] = val
			}
			slot = &cur.Content[j]
		case yaml.SequenceNode:
			j, err := seqIndex(cur, seg, where)
			if err != nil {
				return err
			}
			if last {
				cur.Content[j] = val
			}
			slot = &cur.Content[j]
		default:
			return fmt.Errorf("cannot set %s: %s is %s, not a mapping or a list", path, where, describeNode(cur))
		}
		if last {
			return nil
		}
		// Make the child writable without touching what aliases share.
		child := *slot
		if child.Kind == yaml.AliasNode {
			for n := 0; child.Kind == yaml.AliasNode; n++ {
				if child.Alias == nil || n > 100 {
					return fmt.Errorf("cannot set %s: bad alias at %s", path, strings.Join(segs[:i+1], "."))
				}
				child = child.Alias
			}
			shared = true
		}
		if shared {
			c := *child
			c.Anchor = ""
			c.Content = slices.Clone(child.Content)
			child = &c
			*slot = child
		}
		if child.Kind == yaml.ScalarNode && child.ShortTag() == "!!null" {
			child = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: child.Line, Column: child.Column}
			*slot = child
		}
		cur = child
	}
	return nil
}

// parseOverrideValue parses the value of an override as YAML in flow style.
func parseOverrideValue(s string) (*yaml.Node, error) {
	null := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
	if strings.TrimSpace(s) == "" {
		return null, nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(s), &doc); err != nil {
		return nil, fmt.Errorf("value %q is not YAML: %s", s, strings.TrimPrefix(yamlLineRE.ReplaceAllString(err.Error(), ""), "yaml: "))
	}
	if len(doc.Content) == 0 {
		return null, nil
	}
	v := doc.Content[0]
	if (v.Kind == yaml.MappingNode || v.Kind == yaml.SequenceNode) && v.Style&yaml.FlowStyle == 0 {
		return nil, fmt.Errorf("value %q is not a YAML flow value (a scalar, [a, b] or {k: v}); quote it to set a string", s)
	}
	walkNodes(v, func(n *yaml.Node) { n.Line, n.Column = 0, 0 })
	return v, nil
}

// walkNodes calls f on n and every node under it, aliases not followed.
func walkNodes(n *yaml.Node, f func(*yaml.Node)) {
	f(n)
	for _, c := range n.Content {
		walkNodes(c, f)
	}
}

// keyIndex returns the index in m.Content of the value of key, or -1.
func keyIndex(m *yaml.Node, key string) int {
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		if k.Kind == yaml.ScalarNode && k.Value == key && k.ShortTag() != "!!merge" {
			return i + 1
		}
	}
	return -1
}

// mergedValue returns the value that a << merge gives key in m, or nil.
func mergedValue(m *yaml.Node, key string, depth int) *yaml.Node {
	if depth > 20 {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := m.Content[i]; k.Kind != yaml.ScalarNode || k.ShortTag() != "!!merge" {
			continue
		}
		srcs := []*yaml.Node{resolveAlias(m.Content[i+1])}
		if srcs[0].Kind == yaml.SequenceNode {
			srcs = srcs[0].Content
		}
		for _, src := range srcs {
			src = resolveAlias(src)
			if src.Kind != yaml.MappingNode {
				continue
			}
			if j := keyIndex(src, key); j >= 0 {
				return src.Content[j]
			}
			if v := mergedValue(src, key, depth+1); v != nil {
				return v
			}
		}
	}
	return nil
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// stageName is the name of a stage's mapping: its name, else its kind.
func stageName(n *yaml.Node) string {
	n = resolveAlias(n)
	if n.Kind != yaml.MappingNode {
		return ""
	}
	for _, key := range []string{"name", "kind"} {
		v := mergedValue(n, key, 0)
		if j := keyIndex(n, key); j >= 0 {
			v = n.Content[j]
		}
		if v = resolveAlias(v); v != nil && v.Kind == yaml.ScalarNode && v.ShortTag() != "!!null" && v.Value != "" {
			return v.Value
		}
	}
	return ""
}

// seqIndex finds the element of seq that seg names: an index, or the name
// of a stage.
func seqIndex(seq *yaml.Node, seg, where string) (int, error) {
	if n, err := strconv.Atoi(seg); err == nil || strings.Trim(seg, "0123456789") == "" {
		if err != nil || n < 0 || n >= len(seq.Content) {
			return 0, fmt.Errorf("%s has %d entries; there is no %s.%s", where, len(seq.Content), where, seg)
		}
		return n, nil
	}
	var found []int
	var names []string
	for i, e := range seq.Content {
		name := stageName(e)
		if name == seg {
			found = append(found, i)
		}
		if name != "" {
			names = append(names, name)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		have := "none"
		if len(names) > 0 {
			have = strings.Join(names, ", ")
		}
		return 0, fmt.Errorf("no stage named %q in %s (have: %s)%s", seg, where, have, didYouMean(seg, names))
	}
	return 0, fmt.Errorf("%d stages are named %q in %s; use an index", len(found), seg, where)
}

// stageShorthand turns augment.workers into stages.augment.workers: a path
// that does not start with a top-level field starts with a stage's name.
func stageShorthand(root *yaml.Node, segs []string) ([]string, error) {
	var hits [][]string
	var names []string
	if j := keyIndex(root, "source"); j >= 0 {
		if name := stageName(root.Content[j]); name != "" {
			names = append(names, name)
			if name == segs[0] {
				hits = append(hits, append([]string{"source"}, segs[1:]...))
			}
		}
	}
	for _, sec := range []string{"stages", "sinks"} {
		j := keyIndex(root, sec)
		if j < 0 {
			continue
		}
		seq := resolveAlias(root.Content[j])
		if seq.Kind != yaml.SequenceNode {
			continue
		}
		for _, e := range seq.Content {
			if name := stageName(e); name != "" {
				names = append(names, name)
				if name == segs[0] {
					hits = append(hits, append([]string{sec}, segs...))
				}
			}
		}
	}
	switch len(hits) {
	case 1:
		return hits[0], nil
	case 0:
		return nil, fmt.Errorf("no top-level field or stage named %q (fields: %s; stages: %s)%s",
			segs[0], strings.Join(specFields, ", "), strings.Join(names, ", "), didYouMean(segs[0], append(names, specFields...)))
	}
	return nil, fmt.Errorf("%d stages are named %q; use stages.%s or sinks.%s", len(hits), segs[0], segs[0], segs[0])
}
