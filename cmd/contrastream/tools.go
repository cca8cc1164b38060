//go:build tools

// This file pins gorgonia, which the training stages build on but no
// package imports yet, so that `go mod tidy`
// keeps them at the versions the design was checked against. The blank
// import of assume-no-moving-gc at its newest version is the start-up fix
// gorgonia needs on Go 1.26 (older versions panic at init).
package main

import (
	_ "go4.org/unsafe/assume-no-moving-gc"
	_ "gorgonia.org/gorgonia"
	_ "gorgonia.org/tensor"
)
