//go:build !linux

package sgemm

import "time"

func cpuTime(thread bool) (time.Duration, bool) { return 0, false }
