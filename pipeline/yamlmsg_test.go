package pipeline

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestYAMLMessages pins the yaml.v3 error messages that the spec parser
// relies on: yamlParserErrors (whose line numbers yaml.v3 counts from 0,
// leaving out line 0), the "yaml: line N: " prefix that yamlLineRE strips,
// scanner messages (lines counted from 1) and "unknown anchor", which has
// no line. If an upgrade of yaml.v3 changes them, this fails, rather than
// syntax errors silently pointing at the wrong line. Each case also checks
// the line that ParseSpec reports.
func TestYAMLMessages(t *testing.T) {
	tests := []struct {
		yaml     string
		yamlErr  string // what yaml.v3 says
		specLine int    // the line ParseSpec reports: the offending one
	}{
		// Parser errors.
		{"x: [1, 2\n\n\nb: 3\n", "yaml: line 3: did not find expected ',' or ']'", 4},
		{"x: 1\ny: {a: 1\nb: 3\n", "yaml: line 1: did not find expected ',' or '}'", 2},
		{"x: 1\ny:\n  - a\n  b: 1\n", "yaml: line 2: did not find expected '-' indicator", 3},
		{"a\n...\n%YAML 1.1\nb\n", "yaml: line 3: did not find expected <document start>", 4},
		{"a:\n  b: 1\n c: 2\n", "yaml: line 2: did not find expected key", 3},
		{"key: [a, b]]\n", "yaml: did not find expected key", 1},
		{"x: 1\ny: [\n", "yaml: line 2: did not find expected node content", 3},
		{"%TAG ! !a\n%TAG ! !b\n--- a\n", "yaml: line 1: found duplicate %TAG directive", 2},
		{"a\n...\n%YAML 1.1\n%YAML 1.1\n---\nb\n", "yaml: line 3: found duplicate %YAML directive", 4},
		{"%YAML 2.0\n--- a\n", "yaml: found incompatible YAML document", 1},
		{"x: 1\ny: !x!y a\n", "yaml: line 1: found undefined tag handle", 2},
		// Scanner errors.
		{"a:\n\t- b\n", "yaml: line 2: found character that cannot start any token", 2},
		{"a\nb: c\n", "yaml: line 2: mapping values are not allowed in this context", 2},
		{"a: b: c\n", "yaml: mapping values are not allowed in this context", 1},
		{"a: 'x\n", "yaml: line 2: found unexpected end of stream", 2},
		// No line at all.
		{"x: 1\ny: *nope\n", "yaml: unknown anchor 'nope' referenced", 0},
	}
	// "did not find expected <stream-start>" cannot happen: the scanner
	// always starts a stream.
	pinned := map[string]bool{"did not find expected <stream-start>": true}
	for _, tt := range tests {
		dec := yaml.NewDecoder(bytes.NewReader([]byte(tt.yaml)))
		var err error
		for err == nil {
			var n yaml.Node
			err = dec.Decode(&n)
		}
		if err == io.EOF || err.Error() != tt.yamlErr {
			t.Errorf("yaml.v3 on %q: %v\n want %s", tt.yaml, err, tt.yamlErr)
			continue
		}
		msg := strings.TrimPrefix(yamlLineRE.ReplaceAllString(tt.yamlErr, ""), "yaml: ")
		pinned[msg] = true

		_, err = ParseSpec([]byte(tt.yaml), "flow.yaml", nil, nil)
		var se *SpecError
		if !errors.As(err, &se) || se.Line != tt.specLine || se.Err.Error() != msg {
			t.Errorf("ParseSpec on %q = %v, want line %d: %s", tt.yaml, err, tt.specLine, msg)
		}
	}
	for msg := range yamlParserErrors {
		if !pinned[msg] {
			t.Errorf("yamlParserErrors has %q, which no case pins", msg)
		}
	}
}
