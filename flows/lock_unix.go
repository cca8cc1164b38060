//go:build unix

package flows

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockRunDir takes an exclusive lock (flock) on the folder dir itself, so
// that two processes never train into one run folder at once, and no lock
// file is left behind. The lock goes with the process, however it ends
// (the kernel drops it on exit, SIGKILL included); unlock releases it
// sooner.
func lockRunDir(dir string) (unlock func(), err error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("run folder %s is in use by another contrastream process: wait for it to end, or choose another --out", dir)
		}
		return nil, fmt.Errorf("run folder %s: lock: %w", dir, err)
	}
	return func() { f.Close() }, nil
}
