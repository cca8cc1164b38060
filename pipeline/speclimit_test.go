package pipeline

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// padSpec returns validSpec followed by a YAML comment that makes it n
// bytes long.
func padSpec(t *testing.T, n int) []byte {
	t.Helper()
	b := []byte(validSpec + "#")
	if len(b) > n {
		t.Fatalf("validSpec is longer than %d bytes", n)
	}
	return append(b, strings.Repeat("x", n-len(b))...)
}

// TestParseSpecRefusesOversizedSpecs: a spec of MaxSpecBytes parses, one
// byte more is refused unparsed with a SpecError that names the file, its
// size and the limit.
func TestParseSpecRefusesOversizedSpecs(t *testing.T) {
	reg := newTestRegistry()
	if _, err := ParseSpec(padSpec(t, MaxSpecBytes), "flow.yaml", reg, nil); err != nil {
		t.Fatalf("a spec of exactly the limit: %v", err)
	}
	_, err := ParseSpec(padSpec(t, MaxSpecBytes+1), "flow.yaml", reg, nil)
	var se *SpecError
	if !errors.As(err, &se) || se.File != "flow.yaml" {
		t.Fatalf("a spec one byte over the limit: %v, want a *SpecError for flow.yaml", err)
	}
	for _, want := range []string{"flow.yaml", fmt.Sprint(MaxSpecBytes + 1), fmt.Sprint(MaxSpecBytes)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// TestReadSpecFile: a file of at most MaxSpecBytes is read; a larger one
// is refused with its name, size and the limit, and an endless one
// (/dev/zero) is refused after MaxSpecBytes+1 bytes instead of being read
// whole.
func TestReadSpecFile(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok.yaml")
	if err := os.WriteFile(ok, padSpec(t, MaxSpecBytes), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadSpecFile(ok); err != nil || len(b) != MaxSpecBytes {
		t.Errorf("ReadSpecFile(%s) = %d bytes, %v; want all %d", ok, len(b), err, MaxSpecBytes)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, padSpec(t, MaxSpecBytes+1), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadSpecFile(big)
	if err == nil {
		t.Fatal("a file one byte over the limit was read")
	}
	for _, want := range []string{big, fmt.Sprintf("is %d bytes", MaxSpecBytes+1), fmt.Sprint(MaxSpecBytes)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, err := ReadSpecFile(filepath.Join(dir, "absent.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing file: %v, want os.ErrNotExist", err)
	}
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero")
	}
	if _, err := ReadSpecFile("/dev/zero"); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("more than %d bytes", MaxSpecBytes)) {
		t.Errorf("/dev/zero: %v, want refused as more than %d bytes", err, MaxSpecBytes)
	}
}

func TestParseBytes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Bytes
	}{
		{"1024", 1024}, {"-1", -1}, {"0", 0}, {"16GiB", 16 << 30}, {"16 GiB", 16 << 30}, {"1.5GiB", 3 << 29},
		{"800MB", 800e6}, {"2TB", 2e12}, {"64KiB", 64 << 10}, {"10kB", 10000}, {"512B", 512},
	} {
		if got, err := ParseBytes(tc.in); err != nil || got != tc.want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "lots", "16GB!", "1e400GB", "NaN", "GiB"} {
		if got, err := ParseBytes(bad); err == nil {
			t.Errorf("ParseBytes(%q) = %d, want an error", bad, got)
		}
	}
	for _, b := range []Bytes{16 << 30, 800e6, 1, 3 << 29, -1} {
		text, _ := b.MarshalText()
		if back, err := ParseBytes(string(text)); err != nil || back != b {
			t.Errorf("%d writes %q, read back as %d, %v", b, text, back, err)
		}
	}
	if s := Bytes(1.5 * (1 << 30)).String(); s != "1.50 GiB" {
		t.Errorf("String = %q", s)
	}
}

// TestMaxMemory: max_memory takes a size from the file or an override,
// -1 means no limit, and 0, another negative or a non-size is an error
// naming the field; the spec's YAML keeps it.
func TestMaxMemory(t *testing.T) {
	reg := newTestRegistry()
	s, err := ParseSpec([]byte(validSpec), "flow.yaml", reg, nil)
	if err != nil || s.MaxMemory != nil {
		t.Fatalf("without max_memory: %v, MaxMemory %v; want nil", err, s.MaxMemory)
	}
	for _, tc := range []struct {
		yaml string
		sets []string
		want Bytes
	}{
		{"max_memory: 16GiB\n", nil, 16 << 30},
		{"max_memory: 1000000\n", nil, 1e6},
		{"max_memory: -1\n", nil, -1},
		{"", []string{"max_memory=800MB"}, 800e6},
	} {
		s, err := ParseSpec([]byte(tc.yaml+validSpec), "flow.yaml", reg, tc.sets)
		if err != nil || s.MaxMemory == nil || *s.MaxMemory != tc.want {
			t.Errorf("%q %v: %v, %v; want %d", tc.yaml, tc.sets, err, s, tc.want)
			continue
		}
		y, err := s.YAML()
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseSpec(y, "ckpt", reg, nil)
		if err != nil || back.MaxMemory == nil || *back.MaxMemory != tc.want {
			t.Errorf("%q: its YAML reads back as %v, %v", tc.yaml, back, err)
		}
	}
	for _, tc := range []struct {
		yaml string
		sets []string
		want string
	}{
		{"max_memory: 0\n", nil, "flow.yaml:1: max_memory: must be a size > 0"},
		{"max_memory: -2\n", nil, "flow.yaml:1: max_memory: must be a size > 0"},
		{"max_memory: plenty\n", nil, `flow.yaml:1: max_memory: "plenty" is not a size`},
		{"", []string{"max_memory=0"}, "--set max_memory=0: max_memory: must be a size > 0"},
	} {
		_, err := ParseSpec([]byte(tc.yaml+validSpec), "flow.yaml", reg, tc.sets)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q %v: %v, want an error starting %q", tc.yaml, tc.sets, err, tc.want)
		}
	}
}
