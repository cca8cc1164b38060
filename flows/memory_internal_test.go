package flows

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMachineMemoryFiles: MemTotal from a meminfo file, and the cgroup's
// limit, v2 (memory.max, "max" for none) or v1 (memory.limit_in_bytes,
// a huge value for none), the lowest of the process's cgroup and those
// above it up to the root of the mount; 0 where there is nothing to read.
func TestMachineMemoryFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, text string) string {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	meminfo := write("meminfo", "MemTotal:       24683772 kB\nMemFree:        22000000 kB\n")
	if got := memTotal(meminfo); got != 24683772*1024 {
		t.Errorf("memTotal = %d", got)
	}
	if got := memTotal(write("meminfo2", "MemTotal: lots\n")); got != 0 {
		t.Errorf("memTotal of a bad line = %d, want 0", got)
	}
	if got := memTotal(filepath.Join(dir, "absent")); got != 0 {
		t.Errorf("memTotal of no file = %d, want 0", got)
	}
	for _, tc := range []struct {
		name, self string
		files      map[string]string
		want       int64
	}{
		{"v2", "0::/user.slice/job\n", map[string]string{"user.slice/job/memory.max": "8589934592\n"}, 8 << 30},
		{"v2 no limit", "0::/job\n", map[string]string{"job/memory.max": "max\n"}, 0},
		{"v2 hybrid", "0::/job\n", map[string]string{"unified/job/memory.max": "4294967296\n"}, 4 << 30},
		{"v1", "4:memory:/process_api/x\n0::/\n", map[string]string{"memory/process_api/x/memory.limit_in_bytes": "2147483648\n"}, 2 << 30},
		{"v1 no limit", "4:memory:/x\n", map[string]string{"memory/x/memory.limit_in_bytes": "9223372036854771712\n"}, 0},
		{"namespaced", "0::/elsewhere\n", map[string]string{"memory.max": "1073741824\n"}, 1 << 30},
		{"parent lower", "0::/a/b\n", map[string]string{"a/memory.max": "1073741824\n", "a/b/memory.max": "max\n"}, 1 << 30},
		{"v1 and v2", "4:memory:/x\n0::/x\n", map[string]string{"memory/x/memory.limit_in_bytes": "2147483648\n", "x/memory.max": "3221225472\n"}, 2 << 30},
		{"nothing", "0::/\n", nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := filepath.Join(dir, tc.name)
			for rel, text := range tc.files {
				write(filepath.Join(tc.name, rel), text)
			}
			self := write(tc.name+".cgroup", tc.self)
			if got := cgroupMemoryLimit(self, root); got != tc.want {
				t.Errorf("cgroupMemoryLimit = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestGCHeadroom: the headroom is GOGC percent of the heap (100 in tests,
// unless the environment says otherwise).
func TestGCHeadroom(t *testing.T) {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		t.Skip("GOGC or GOMEMLIMIT set")
	}
	if got := gcHeadroom(1 << 30); got != 1<<30 {
		t.Errorf("gcHeadroom(1 GiB) = %g, want 1 GiB at GOGC 100", got)
	}
}
