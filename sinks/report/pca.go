package report

import (
	"errors"
	"fmt"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat"
)

// PCA projects the n rows of data (row-major, d columns) on their first
// dims principal components and returns the n×dims coordinates (row-major)
// and the share of the total variance each component explains. The
// components' signs follow gonum's SVD; each is flipped, if need be, so that
// its largest-magnitude loading is positive, which makes the result
// deterministic. It costs O(n·d² + d³).
func PCA(data []float32, n, d, dims int) (coords []float64, explained []float64, err error) {
	if n < 2 || d < 1 || len(data) != n*d {
		return nil, nil, fmt.Errorf("report: PCA of %d rows of %d values (%d given): want at least 2 rows", n, d, len(data))
	}
	if dims < 1 || dims > d {
		return nil, nil, fmt.Errorf("report: PCA to %d dimensions of %d", dims, d)
	}
	x := mat.NewDense(n, d, nil)
	for i := range n {
		for j := range d {
			x.Set(i, j, float64(data[i*d+j]))
		}
	}
	var pc stat.PC
	if !pc.PrincipalComponents(x, nil) {
		return nil, nil, errors.New("report: PCA: the SVD did not converge")
	}
	var vecs mat.Dense
	pc.VectorsTo(&vecs)
	vars := pc.VarsTo(nil)
	k := min(dims, len(vars))
	var total float64
	for _, v := range vars {
		total += v
	}
	explained = make([]float64, dims)
	for c := range k {
		if total > 0 {
			explained[c] = vars[c] / total
		}
		// Deterministic sign.
		best := 0.0
		for j := range d {
			if v := vecs.At(j, c); abs(v) > abs(best) {
				best = v
			}
		}
		if best < 0 {
			for j := range d {
				vecs.Set(j, c, -vecs.At(j, c))
			}
		}
	}
	// Centre, then project.
	means := make([]float64, d)
	for j := range d {
		means[j] = stat.Mean(mat.Col(nil, j, x), nil)
	}
	coords = make([]float64, n*dims)
	for i := range n {
		for c := range k {
			var s float64
			for j := range d {
				s += (x.At(i, j) - means[j]) * vecs.At(j, c)
			}
			coords[i*dims+c] = s
		}
	}
	return coords, explained, nil
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
