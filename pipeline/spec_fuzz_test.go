package pipeline

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzParseSpec checks that ParseSpec never panics, returns a spec or an
// error (never both, never neither), locates every error in the file or an
// override, and that a spec it accepts survives YAML and back unchanged.
func FuzzParseSpec(f *testing.F) {
	f.Add([]byte(validSpec), "")
	f.Add([]byte(validSpecYAML), "stages.augment.crop_scale=[0.2,1]")
	f.Add([]byte(overrideBase), "stages.1.batch_size=64")
	f.Add([]byte(overrideBase), "sinks.more.labels={a: b}")
	f.Add([]byte(overrideBase), "augment.color.brightness=0.5")
	for _, tc := range specErrorTests {
		set := ""
		if len(tc.sets) > 0 {
			set = tc.sets[0]
		}
		f.Add([]byte(tc.yaml), set)
	}
	reg := newTestRegistry()
	f.Fuzz(func(t *testing.T, data []byte, set string) {
		var sets []string
		if set != "" {
			sets = []string{set}
		}
		s, err := ParseSpec(data, "fuzz.yaml", reg, sets)
		if (s == nil) == (err == nil) {
			t.Fatalf("ParseSpec = %v, %v: want a spec or an error", s, err)
		}
		if err != nil {
			var se *SpecError
			if !errors.As(err, &se) {
				t.Fatalf("error %T is not a *SpecError: %v", err, err)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "fuzz.yaml") && !strings.HasPrefix(msg, "--set ") {
				t.Fatalf("error names neither the file nor an override: %s", msg)
			}
			return
		}
		y, err := s.YAML()
		if err != nil {
			t.Fatalf("YAML() of an accepted spec: %v", err)
		}
		s2, err := ParseSpec(y, "normal.yaml", reg, nil)
		if err != nil {
			t.Fatalf("reading YAML() back: %v\n%s", err, y)
		}
		y2, err := s2.YAML()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(y, y2) {
			t.Fatalf("YAML() changed on a round trip:\n%s\nthen\n%s", y, y2)
		}
		if _, err := s.Build(reg, s.Env()); err != nil {
			t.Fatalf("Build of an accepted spec: %v", err)
		}
	})
}
