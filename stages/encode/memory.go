package encode

import (
	"fmt"
	"math"
)

// Memory estimates: how many bytes an encoder's replicas and pools hold,
// from the layer shapes alone, before anything is allocated, so that a
// flow whose batch would not fit in memory is refused before it runs.
//
// A replica owns, per image of its shard, the output of every op of the
// forward pass and what an op keeps for its gradient (max-pool indices,
// attention probabilities, GELU's Φ(x), the patch rows, LayerNorm
// statistics); a training replica also owns an input gradient per output.
// Per replica it owns one image's im2col columns per convolution (three
// with the backward pass), and a gradient per parameter (more with the
// backward pass: dW, a transposed copy, gorgonia's dual values). The
// counts below follow that; memSlack covers what they leave out (the
// head's gorgonia ops, headers, rounding of allocations).
// TestMemoryEstimate checks them against the Go heap of real replicas: at
// a shard of 32 images, 5–13% above it for convnet-s and resnet18, about
// 25–30% above for vit (whose count errs high).
const (
	memSlack = 1.08
	// replicaOverhead and opOverhead are the graph, its compiled programs
	// and gorgonia's bookkeeping, per replica and per op of the graph.
	replicaOverhead = 1 << 20
	opOverhead      = 20 << 10
)

// layerCounts are the values of one replica's buffers, by kind, as
// float64 so that no shape a config allows overflows them.
type layerCounts struct {
	out   float64 // per image: op outputs (each has a gradient in training)
	saved float64 // per image: what ops keep for the backward pass
	cols  float64 // per replica: one image's im2col columns, summed over the convolutions
	conv  float64 // per replica: convolution weights (dW and a transposed copy in training)
	ops   float64 // per replica: the ops of the graph
	// params is the number of the parameters (of the backbone, from an
	// Arch's Count; of the whole encoder, from Config.counts).
	params float64
}

// addConv counts a bias-free convolution of out k×k filters, stride s,
// padding p, on ch×h×w, and the BatchNorm after it; it returns the output's
// height and width.
func (lc *layerCounts) addConv(ch, h, w, out, k, s, p int) (int, int) {
	oh, ow := (h+2*p-k)/s+1, (w+2*p-k)/s+1
	lc.out += 2 * float64(out) * float64(oh*ow) // the convolution, then its BatchNorm
	lc.cols += float64(ch*k*k) * float64(oh*ow)
	lc.ops += 2
	lc.conv += float64(out) * float64(ch*k*k)
	return oh, ow
}

// counts walks c's layers (defaults filled in) on input in: its
// architecture's Count, then the head's.
func (c Config) counts(in Input) (layerCounts, error) {
	if err := c.Validate(); err != nil {
		return layerCounts{}, fmt.Errorf("encode: %w", err)
	}
	if err := in.Validate(); err != nil {
		return layerCounts{}, err
	}
	c = c.withDefaults()
	a := c.arch()
	if err := a.CheckInput(c, in); err != nil {
		return layerCounts{}, fmt.Errorf("encode: %w", err)
	}
	lc := a.Count(c, in)
	feats, h, o := float64(a.Features(c)), float64(c.Hidden), float64(c.Out)
	lc.out += feats + 2*h + o // the pooled features, the head (linear, relu, linear)
	lc.ops += 3
	lc.params = lc.params + feats*h + h + h*o + o
	return lc, nil
}

// ParamCount is the number of parameters of c's encoder on input in: the
// values of NewWeights's Params.
func (c Config) ParamCount(in Input) (int64, error) {
	p, err := c.params(in)
	return saturate(p), err
}

// params is ParamCount as a float64.
func (c Config) params(in Input) (float64, error) {
	lc, err := c.counts(in)
	return lc.params, err
}

// ReplicaBytes estimates the memory a Replica of c's encoder on images of
// in holds for shards of n images once it has run: with backward, a
// training replica (Forward and Backward: a query encoder); without, one
// that only runs forward (MoCo's key encoder, the kNN monitor's, an
// embedding export). Most of it is per image, about 0.85 MB for convnet-s
// on 28×28 in training and half that forward only; it does not count the
// Weights, which replicas share. It saturates at math.MaxInt64.
func (c Config) ReplicaBytes(in Input, n int, backward bool) (int64, error) {
	v, err := c.replicaBytes(in, n, backward)
	return saturate(v), err
}

func (c Config) replicaBytes(in Input, n int, backward bool) (float64, error) {
	if n < 1 {
		return 0, fmt.Errorf("encode: shard size %d, want at least 1", n)
	}
	lc, err := c.counts(in)
	if err != nil {
		return 0, err
	}
	p := lc.params
	perImage := lc.out + lc.saved
	fixed := p + lc.cols // Param.Grad; the im2col columns
	if backward {
		perImage += lc.out // the gradient of every output
		// dW and a transposed copy of each weight, gorgonia's dual values,
		// the backward im2col and col2im columns.
		fixed = 3.5*p + 2*lc.cols
	}
	return 4*(perImage*float64(n)+fixed)*memSlack + replicaOverhead + opOverhead*lc.ops, nil
}

// MemoryBytes estimates the memory the encode stage's Pool holds for
// batches of batch samples of in (NewPool with c.PoolConfig(batch)): the
// training shards' activations and gradients for every image of the step
// (both views without a key encoder) and each shard's parameter gradient,
// the key encoder's shards (forward only), the weights with their summed
// gradient and the key encoder's copy, and the embeddings. It grows
// linearly with the batch size at a fixed shard size, and saturates at
// math.MaxInt64. The error is NewPool's or NewWeights's, for a config or
// shard size they would refuse.
func (c StageConfig) MemoryBytes(in Input, batch int) (int64, error) {
	if batch < 1 {
		return 0, fmt.Errorf("encode: batch size %d, want at least 1", batch)
	}
	pl, err := c.PoolConfig(batch).plan()
	if err != nil {
		return 0, err
	}
	q, err := c.replicaBytes(in, pl.shard, true)
	if err != nil {
		return 0, err
	}
	total := float64(pl.shards) * q
	p, _ := c.params(in)
	weights := 2 * p // the weights and the pool's summed gradient
	if c.KeyEncoder {
		k, err := c.replicaBytes(in, pl.shard, false)
		if err != nil {
			return 0, err
		}
		total += float64(batch/pl.shard) * k
		weights += p // the key encoder's weights
	}
	out, b := float64(c.withDefaults().Out), float64(batch)
	vals := weights + 2*b*out // the embeddings of both views
	if pl.shard > batch {
		vals += 2*b*float64(in.Len()) + 2*b*out // one shard takes both views, copied together
	}
	return saturate(total + 4*vals), nil
}

// saturate rounds v up to an int64, saturating at math.MaxInt64.
func saturate(v float64) int64 {
	if v >= math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(math.Ceil(v))
}

// Features is the size of the features of c's encoder, its backbone's
// output: 128 for convnet-s, 8·Width for resnet18 (512 by default), Width
// for vit (64 by default); 0 for an unknown architecture.
func (c Config) Features() int {
	c = c.withDefaults()
	a, ok := lookupArch(c.Arch)
	if !ok {
		return 0
	}
	return a.Features(c)
}
