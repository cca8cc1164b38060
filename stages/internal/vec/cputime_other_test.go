//go:build !linux

package vec

import "time"

func cpuTime(thread bool) (time.Duration, bool) { return 0, false }
