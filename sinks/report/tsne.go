package report

import (
	"context"
	"fmt"
	"math"
)

// TSNEConfig configures TSNE. The zero value means the defaults.
type TSNEConfig struct {
	// Perplexity is the effective number of neighbours each point keeps,
	// below n/3. Default 30.
	Perplexity float64
	// Iterations of gradient descent; the first quarter (at most 250)
	// exaggerates P 12-fold. Default 750.
	Iterations int
	// LearningRate of the descent. Default max(n/12, 50).
	LearningRate float64
}

// TSNE embeds the n rows of data (row-major, d columns) in 2-D by exact
// t-SNE (van der Maaten and Hinton, 2008): Gaussian affinities of the
// given perplexity in the input, Student-t affinities in the output,
// gradient descent on their KL divergence with momentum, per-coordinate
// gains and early exaggeration, started from the data's first two
// principal components (scaled to a standard deviation of 1e-4), so that
// the result is deterministic and keeps the PCA map's global layout. It
// costs O(n²) memory and O(n²) time per iteration: about 1 s per 1,000
// points and 250 iterations on one core; use it on a few thousand points
// at most. It returns the n×2 coordinates, row-major. ctx is checked
// between iterations.
func TSNE(ctx context.Context, data []float32, n, d int, cfg TSNEConfig) ([]float64, error) {
	if n < 4 || d < 1 || len(data) != n*d {
		return nil, fmt.Errorf("report: t-SNE of %d rows of %d values (%d given): want at least 4 rows", n, d, len(data))
	}
	perp := cfg.Perplexity
	if perp == 0 {
		perp = 30
	}
	if perp < 1 || perp > float64(n-1)/3 {
		perp = math.Max(1, math.Min(perp, float64(n-1)/3))
	}
	iters := cfg.Iterations
	if iters <= 0 {
		iters = 750
	}
	lr := cfg.LearningRate
	if lr <= 0 {
		lr = math.Max(float64(n)/12, 50)
	}

	// Squared distances in the input.
	dist := make([]float64, n*n)
	for i := range n {
		xi := data[i*d : (i+1)*d]
		for j := i + 1; j < n; j++ {
			xj := data[j*d : (j+1)*d]
			var s float64
			for k := range d {
				t := float64(xi[k] - xj[k])
				s += t * t
			}
			dist[i*n+j], dist[j*n+i] = s, s
		}
	}
	// P: conditional Gaussians of the given perplexity, symmetrised.
	p := make([]float64, n*n)
	target := math.Log(perp)
	row := make([]float64, n)
	for i := range n {
		lo, hi, beta := 0.0, math.Inf(1), 1.0
		// Scale the start to the row's distances so that the search
		// converges quickly whatever the data's scale.
		var mean float64
		for j := range n {
			mean += dist[i*n+j]
		}
		if mean > 0 {
			beta = float64(n) / mean
		}
		for range 100 {
			var sum, dsum float64
			minD := math.Inf(1)
			for j := range n {
				if j != i {
					minD = math.Min(minD, dist[i*n+j])
				}
			}
			for j := range n {
				if j == i {
					row[j] = 0
					continue
				}
				row[j] = math.Exp(-(dist[i*n+j] - minD) * beta) // shifted: no underflow
				sum += row[j]
				dsum += (dist[i*n+j] - minD) * row[j]
			}
			h := math.Log(sum) + beta*dsum/sum // entropy, nats
			if math.Abs(h-target) < 1e-5 {
				break
			}
			if h > target { // too flat: sharpen
				lo = beta
				if math.IsInf(hi, 1) {
					beta *= 2
				} else {
					beta = (beta + hi) / 2
				}
			} else {
				hi = beta
				beta = (beta + lo) / 2
			}
		}
		var sum float64
		for j := range n {
			sum += row[j]
		}
		for j := range n {
			p[i*n+j] = row[j] / sum
		}
	}
	for i := range n {
		for j := i + 1; j < n; j++ {
			v := math.Max((p[i*n+j]+p[j*n+i])/(2*float64(n)), 1e-12)
			p[i*n+j], p[j*n+i] = v, v
		}
		p[i*n+i] = 0
	}
	dist = nil

	// Start from PCA, scaled to a standard deviation of 1e-4.
	y, _, err := PCA(data, n, d, 2)
	if err != nil {
		return nil, err
	}
	var ss float64
	for i := range n {
		ss += y[2*i] * y[2*i]
	}
	scale := 1e-4
	if ss > 0 {
		scale /= math.Sqrt(ss / float64(n))
	}
	for i := range y {
		y[i] *= scale
	}

	grad := make([]float64, 2*n)
	upd := make([]float64, 2*n)
	gains := make([]float64, 2*n)
	for i := range gains {
		gains[i] = 1
	}
	num := make([]float64, n*n)
	exagIters := min(250, iters/4)
	for it := range iters {
		if it%10 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		exag, mom := 1.0, 0.8
		if it < exagIters {
			exag, mom = 12, 0.5
		}
		// Student-t affinities.
		var z float64
		for i := range n {
			for j := i + 1; j < n; j++ {
				dx, dy := y[2*i]-y[2*j], y[2*i+1]-y[2*j+1]
				v := 1 / (1 + dx*dx + dy*dy)
				num[i*n+j], num[j*n+i] = v, v
				z += 2 * v
			}
		}
		clear(grad)
		for i := range n {
			var gx, gy float64
			for j := range n {
				if j == i {
					continue
				}
				w := (exag*p[i*n+j] - num[i*n+j]/z) * num[i*n+j]
				gx += w * (y[2*i] - y[2*j])
				gy += w * (y[2*i+1] - y[2*j+1])
			}
			grad[2*i], grad[2*i+1] = 4*gx, 4*gy
		}
		for k := range y {
			if (grad[k] > 0) != (upd[k] > 0) {
				gains[k] += 0.2
			} else {
				gains[k] = math.Max(gains[k]*0.8, 0.01)
			}
			upd[k] = mom*upd[k] - lr*gains[k]*grad[k]
			y[k] += upd[k]
		}
		// Keep the map centred.
		var cx, cy float64
		for i := range n {
			cx += y[2*i]
			cy += y[2*i+1]
		}
		cx, cy = cx/float64(n), cy/float64(n)
		for i := range n {
			y[2*i] -= cx
			y[2*i+1] -= cy
		}
	}
	return y, nil
}
