//go:build tools

// This file pins modules that the training stages build on but that no
// package of this stage of the project imports yet, so that `go mod tidy`
// keeps them at the versions the design was checked against. The blank
// import of assume-no-moving-gc at its newest version is the start-up fix
// gorgonia needs on Go 1.26 (older versions panic at init).
package main

import (
	_ "github.com/apache/arrow-go/v18/parquet/pqarrow"
	_ "github.com/disintegration/imaging"
	_ "github.com/reugn/go-streams/flow"
	_ "gopkg.in/yaml.v3"
	_ "go4.org/unsafe/assume-no-moving-gc"
	_ "gorgonia.org/gorgonia"
	_ "gorgonia.org/tensor"
)
