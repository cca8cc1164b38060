//go:build !amd64 || purego

package sgemm

// best returns the pure-Go kernel: assembly kernels exist for amd64 only.
func best() kernel { return generic }

// kernels lists every kernel this CPU can run, for the tests.
func kernels() []kernel { return []kernel{generic} }
