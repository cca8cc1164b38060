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
