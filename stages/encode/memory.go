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
}

// counts walks c's layers (defaults filled in) on input in.
func (c Config) counts(in Input) (layerCounts, error) {
	if err := c.Validate(); err != nil {
		return layerCounts{}, fmt.Errorf("encode: %w", err)
	}
	if err := in.Validate(); err != nil {
		return layerCounts{}, err
	}
	c = c.withDefaults()
	var lc layerCounts
	conv := func(ch, h, w, out, k, s, p int) (int, int) {
		oh, ow := (h+2*p-k)/s+1, (w+2*p-k)/s+1
		lc.out += 2 * float64(out) * float64(oh*ow) // the convolution, then its BatchNorm
		lc.cols += float64(ch*k*k) * float64(oh*ow)
		lc.ops += 2
		lc.conv += float64(out) * float64(ch*k*k)
		return oh, ow
	}
	var feats int
	switch c.Arch {
	case ConvNetS:
		ch, h, w := in.C, in.H, in.W
		for _, b := range convnetS {
			h, w = conv(ch, h, w, b.out, 3, 1, 1)
			ch = b.out
			if b.pool {
				h, w = h/2, w/2
				lc.out += float64(ch * h * w)
				lc.saved += float64(ch * h * w) // the argmax indices, int32
				lc.ops++
			}
		}
		feats = ch
	case ResNet18:
		ch, h, w := c.Width, in.H, in.W
		h, w = conv(in.C, h, w, ch, 3, 1, 1)
		for _, b := range resnet18Blocks(c.Width) {
			oh, ow := conv(b.in, h, w, b.out, 3, b.str, 1)
			conv(b.out, oh, ow, b.out, 3, 1, 1)
			if b.downsample() {
				conv(b.in, h, w, b.out, 1, b.str, 0)
			}
			h, w, ch = oh, ow, b.out
			lc.out += float64(ch) * float64(h*w) // the residual sum
			lc.ops++
		}
		feats = ch
	case ViT:
		if err := c.vitInput(in); err != nil {
			return layerCounts{}, fmt.Errorf("encode: %w", err)
		}
		t, d, mlp := float64(c.vitTokens(in)), float64(c.Width), float64(c.MLP)
		lc.saved += (t - 1) * float64(in.C*c.Patch*c.Patch) // the patch rows
		lc.out += t * d                                     // the embedded tokens
		lc.conv += d * float64(in.C*c.Patch*c.Patch)
		per := 2*t*d + // the LayerNorms
			3*t*d + // qkv
			t*d + // the attention's output
			2*t*d + // the projection and the residual sum
			2*t*mlp + // fc1 and GELU
			2*t*d // fc2 and the residual sum
		saved := float64(c.Heads)*t*t + // the attention's probabilities
			t*mlp + // GELU's Φ(x)
			4*t // the LayerNorms' means and inverse deviations
		lc.out += float64(c.Depth)*per + 2*d // and the class token with its LayerNorm
		lc.saved += float64(c.Depth) * saved
		lc.ops += 2 + 11*float64(c.Depth)
		feats = c.Width
	}
	lc.out += float64(feats) + 3*float64(c.Hidden) + 2*float64(c.Out) // the pooled features, the head
	lc.ops += 6
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
	if err != nil {
		return 0, err
	}
	c = c.withDefaults()
	n := lc.conv
	var feats float64
	switch c.Arch {
	case ConvNetS:
		for _, b := range convnetS {
			n += 2 * float64(b.out) // BatchNorm's scale and shift
		}
		feats = convnetSFeatures
	case ResNet18:
		bn := float64(c.Width) // the channels of every BatchNorm
		for _, b := range resnet18Blocks(c.Width) {
			bn += 2 * float64(b.out)
			if b.downsample() {
				bn += float64(b.out)
			}
		}
		n += 2 * bn
		feats = float64(resnet18Features(c.Width))
	case ViT:
		t, d, mlp := float64(c.vitTokens(in)), float64(c.Width), float64(c.MLP)
		n += d + t*d + d // the class token, the position embedding, the patch bias
		n += float64(c.Depth) * (2*d + 3*d*d + 3*d + d*d + d + 2*d + d*mlp + mlp + mlp*d + d)
		n += 2 * d // the final LayerNorm
		feats = d
	}
	h, o := float64(c.Hidden), float64(c.Out)
	return n + feats*h + h + h*o + o, nil
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
	p, err := c.params(in)
	if err != nil {
		return 0, err
	}
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
// for vit (64 by default).
func (c Config) Features() int {
	c = c.withDefaults()
	switch c.Arch {
	case ResNet18:
		return resnet18Features(c.Width)
	case ViT:
		return c.Width
	}
	return convnetSFeatures
}
