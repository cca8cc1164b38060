package vec

import (
	"time"

	"golang.org/x/sys/unix"
)

// cpuTime returns the CPU time (user + system) used so far by the calling
// thread when thread is set, else by the whole process; ok is false where
// it cannot be read.
func cpuTime(thread bool) (d time.Duration, ok bool) {
	who := unix.RUSAGE_SELF
	if thread {
		who = unix.RUSAGE_THREAD
	}
	var ru unix.Rusage
	if unix.Getrusage(who, &ru) != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
