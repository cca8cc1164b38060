package encode

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/contrastream/contrastream/pipeline"
	G "gorgonia.org/gorgonia"
)

// # vit
//
// A small Vision Transformer (Dosovitskiy et al. 2021) under timm's
// state_dict names, pre-norm, for images whose sides the patch size P
// divides; D = Width, L = (H/P)·(W/P) patches, T = 1 + L tokens:
//
//	input N×C×H×W
//	patch_embed  Conv2d(C, D, kernel P, stride P) with bias → N×L×D
//	cls_token (1×1×D) prepended, pos_embed (1×T×D) added    → N×T×D
//	blocks.i, i < Depth:
//	  x = x + proj(attn(qkv(norm1(x))))   qkv Linear(D, 3D), Heads heads of D/Heads, scale 1/√(D/Heads)
//	  x = x + fc2(GELU(fc1(norm2(x))))    fc1 Linear(D, MLP), exact (erf) GELU, fc2 Linear(MLP, D)
//	norm  LayerNorm(D) of the class token                     → features N×D
//	head.0 Linear(D, Hidden)  ReLU  head.2 Linear(Hidden, Out) → projection N×Out
//
// Every LayerNorm has ε = 1e-6 (timm's). No dropout, no drop-path. The
// final norm is applied to the class token alone: a LayerNorm works token
// by token, so this is the same features for 1/T of the work.
//
// Initialisation, as timm's VisionTransformer: cls_token, pos_embed and
// every Linear weight (the head's too) from a normal of standard deviation
// 0.02 truncated to [−2, 2], Linear biases 0, LayerNorm weights 1 and
// biases 0, the patch embedding as PyTorch's Conv2d (uniform in
// ±1/√(C·P·P)). The LayerNorms, the biases, cls_token and pos_embed are
// NoDecay.
//
// The defaults (patch 7, width 64, depth 2, heads 4, mlp 128) are the
// network of testdata/vit_tiny.safetensors, 28×28 images in 16 patches.
// With 1 channel and the default head it has 96,256 parameters (24,832
// of them the head's).
//
// Ops: newPatchEmbed, newLayerNorm, newLinear, newAttention, newGELU,
// newAdd and newCLS (vit_ops.go, op_*.go), each with its gradients.
//
// Cost: one training step (forward, backward) of the default network on
// a shard of 256 28×28×1 images is about 1.9 GFLOP. On this project's
// 2-core machine a Pool of two replicas runs it in 55.5 ms
// (BenchmarkViTPoolStep, median of 3 runs alternated with
// cmd/reference/vit_reference.py --bench-steps 10, where PyTorch 1.13 with
// 2 threads took 99.6 ms). The ops run on one goroutine each, so a single
// replica keeps about one core busy (a Pool runs one replica per core). A
// replica holds about 0.3 MB per image; the ops reuse their buffers
// across steps (a pool step allocates 3.2 MB in all).

// ViT is a small Vision Transformer: a strided-convolution patch
// embedding of Width dimensions, a class token and learned position
// embeddings, Depth pre-norm Transformer blocks of Heads heads and an MLP
// of MLP units, a final LayerNorm, and the class token as the Width
// features, then the projection head. Its options are Width, Patch,
// Depth, Heads and MLP.
const ViT = "vit"

func init() { RegisterArch(vitArch{}) }

// vitArch is vit as an Arch.
type vitArch struct{}

func (vitArch) Name() string                            { return ViT }
func (vitArch) Fields() []string                        { return []string{"width", "patch", "depth", "heads", "mlp"} }
func (vitArch) Defaults(c Config) Config                { return c.vitDefaults() }
func (vitArch) Validate(c Config) error                 { return c.validateViT() }
func (vitArch) CheckInput(c Config, in Input) error     { return c.vitInput(in) }
func (vitArch) Features(c Config) int                   { return c.Width }
func (vitArch) Params(w *Weights, in Input, ini initer) { w.vitParams(in, ini.uniform, ini.rng) }

// Build adds vit's backbone on x; its features are the class token.
func (vitArch) Build(nb *netBuilder, x *act, c Config) (*G.Node, error) { return nb.vit(x, c) }

// initHead initialises the head's Linears as timm does every Linear: the
// weight from truncNormal, the bias 0.
func (vitArch) initHead(weight, _ *Tensor, _ int, ini initer) { truncNormal(weight, ini.rng) }

// Count counts vit's layers on in (whose sides the patch size divides).
func (vitArch) Count(c Config, in Input) layerCounts {
	var lc layerCounts
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
	n := lc.conv
	n += d + t*d + d // the class token, the position embedding, the patch bias
	n += float64(c.Depth) * (2*d + 3*d*d + 3*d + d*d + d + 2*d + d*mlp + mlp + mlp*d + d)
	n += 2 * d // the final LayerNorm
	lc.params = n
	return lc
}

// vit's defaults and bounds.
const (
	DefaultViTPatch = 7
	DefaultViTWidth = 64
	DefaultViTDepth = 2
	DefaultViTHeads = 4
	DefaultViTMLP   = 128
	// MaxViTWidth bounds Config.Width for vit.
	MaxViTWidth = 1 << 12
	// MaxViTDepth bounds Config.Depth.
	MaxViTDepth = 64
	// ViTLNEps is the ε of vit's LayerNorms (timm's 1e-6).
	ViTLNEps = 1e-6
	// vitInitStd is the standard deviation of timm's trunc_normal_ init.
	vitInitStd = 0.02
)

// validateViT checks the vit fields of c.
func (c Config) validateViT() error {
	if c.Width < 0 || c.Width > MaxViTWidth {
		return &pipeline.FieldError{Field: "width", Msg: fmt.Sprintf("must be in [1, %d] for %s (0: %d), got %d", MaxViTWidth, ViT, DefaultViTWidth, c.Width)}
	}
	if c.Patch < 0 || c.Patch > MaxSide {
		return &pipeline.FieldError{Field: "patch", Msg: fmt.Sprintf("must be in [1, %d] (0: %d), got %d", MaxSide, DefaultViTPatch, c.Patch)}
	}
	if c.Depth < 0 || c.Depth > MaxViTDepth {
		return &pipeline.FieldError{Field: "depth", Msg: fmt.Sprintf("must be in [1, %d] (0: %d), got %d", MaxViTDepth, DefaultViTDepth, c.Depth)}
	}
	if c.MLP < 0 || c.MLP > MaxWidth {
		return &pipeline.FieldError{Field: "mlp", Msg: fmt.Sprintf("must be in [1, %d] (0: %d), got %d", MaxWidth, DefaultViTMLP, c.MLP)}
	}
	d := c.vitDefaults()
	if c.Heads < 0 || d.Width%d.Heads != 0 {
		return &pipeline.FieldError{Field: "heads", Msg: fmt.Sprintf("must divide the width %d (0: %d), got %d", d.Width, DefaultViTHeads, c.Heads)}
	}
	return nil
}

// vitDefaults fills in c's zero vit fields.
func (c Config) vitDefaults() Config {
	for _, f := range []struct {
		v   *int
		def int
	}{{&c.Patch, DefaultViTPatch}, {&c.Width, DefaultViTWidth}, {&c.Depth, DefaultViTDepth}, {&c.Heads, DefaultViTHeads}, {&c.MLP, DefaultViTMLP}} {
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	return c
}

// vitInput checks that c's patch size (defaults filled in) divides the
// images' sides.
func (c Config) vitInput(in Input) error {
	if in.H%c.Patch == 0 && in.W%c.Patch == 0 {
		return nil
	}
	var fits []string
	for p := 2; p <= min(in.H, in.W) && len(fits) < 6; p++ {
		if in.H%p == 0 && in.W%p == 0 {
			fits = append(fits, fmt.Sprint(p))
		}
	}
	hint := "no patch size over 1 divides both sides"
	if len(fits) > 0 {
		hint = "patch sizes that divide both: " + strings.Join(fits, ", ")
	}
	return &pipeline.FieldError{Field: "patch", Msg: fmt.Sprintf("the patch size %d does not divide the %d×%d images the encoder gets (the augment stage's size); the patches must tile the image: change patch (%s) or the augment size", c.Patch, in.H, in.W, hint)}
}

// vitTokens is the number of tokens of an image of in: the class token
// and the patches.
func (c Config) vitTokens(in Input) int { return 1 + (in.H/c.Patch)*(in.W/c.Patch) }

// truncNormal fills t from a normal of standard deviation 0.02, drawing
// again any value outside [−2, 2] (timm's trunc_normal_(std=.02)).
func truncNormal(t *Tensor, rng *rand.Rand) {
	for i := range t.Data {
		v := rng.NormFloat64() * vitInitStd
		for math.Abs(v) > 2 {
			v = rng.NormFloat64() * vitInitStd
		}
		t.Data[i] = float32(v)
	}
}

// vitParams appends vit's parameters (all but the head's) in timm's
// state_dict order.
func (w *Weights) vitParams(in Input, uniform func(t *Tensor, fanIn int), rng *rand.Rand) {
	c := w.cfg
	d, t := c.Width, c.vitTokens(in)
	ones := func(t *Tensor) *Tensor {
		for i := range t.Data {
			t.Data[i] = 1
		}
		return t
	}
	cls, pos := newTensor("cls_token", true, 1, 1, d), newTensor("pos_embed", true, 1, t, d)
	truncNormal(cls, rng)
	truncNormal(pos, rng)
	pw, pb := newTensor("patch_embed.weight", false, d, in.C, c.Patch, c.Patch), newTensor("patch_embed.bias", true, d)
	uniform(pw, in.C*c.Patch*c.Patch)
	uniform(pb, in.C*c.Patch*c.Patch)
	w.Params = append(w.Params, cls, pos, pw, pb)
	linear := func(name string, in, out int) {
		lw := newTensor(name+".weight", false, out, in)
		truncNormal(lw, rng)
		w.Params = append(w.Params, lw, newTensor(name+".bias", true, out))
	}
	norm := func(name string) {
		w.Params = append(w.Params, ones(newTensor(name+".weight", true, d)), newTensor(name+".bias", true, d))
	}
	for i := range c.Depth {
		b := fmt.Sprintf("blocks.%d.", i)
		norm(b + "norm1")
		linear(b+"qkv", d, 3*d)
		linear(b+"proj", d, d)
		norm(b + "norm2")
		linear(b+"fc1", d, c.MLP)
		linear(b+"fc2", c.MLP, d)
	}
	norm("norm")
}

// vit adds vit's backbone on x and returns its features, the final
// LayerNorm of the class tokens (n×Width).
func (nb *netBuilder) vit(x *act, c Config) (*G.Node, error) {
	if err := c.vitInput(Input{C: x.c, H: x.h, W: x.w}); err != nil {
		return nil, err
	}
	n, d, st := nb.n, c.Width, nb.st
	t := c.vitTokens(Input{C: x.c, H: x.h, W: x.w})
	m, hd := n*t, d/c.Heads
	p := func(name string) *G.Node {
		nd, ok := nb.param[name]
		if !ok {
			panic("vit: no parameter " + name)
		}
		return nd
	}
	apply := func(op G.Op, in ...*G.Node) *G.Node { return G.Must(G.ApplyOp(op, in...)) }
	lin := func(name string, h *G.Node, in, out int) *G.Node {
		return apply(newLinear(name, st, m, in, out), h, p(name+".weight"), p(name+".bias"))
	}
	ln := func(name string, h *G.Node, rows int) *G.Node {
		return apply(newLayerNorm(name, st, rows, d, ViTLNEps), h, p(name+".weight"), p(name+".bias"))
	}
	h := apply(newPatchEmbed("patch_embed", st, n, x.c, x.h, x.w, c.Patch, d), x.node,
		p("patch_embed.weight"), p("patch_embed.bias"), p("cls_token"), p("pos_embed"))
	scale := float32(1 / math.Sqrt(float64(hd)))
	for i := range c.Depth {
		b := fmt.Sprintf("blocks.%d.", i)
		a := lin(b+"qkv", ln(b+"norm1", h, m), d, 3*d)
		a = apply(newAttention(b+"attn", st, n, t, c.Heads, hd, scale), a)
		h = apply(newAdd(b+"add1", st, m, d), h, lin(b+"proj", a, d, d))
		a = lin(b+"fc1", ln(b+"norm2", h, m), d, c.MLP)
		a = apply(newGELU(b+"gelu", st, m, c.MLP), a)
		h = apply(newAdd(b+"add2", st, m, d), h, lin(b+"fc2", a, c.MLP, d))
	}
	return ln("norm", apply(newCLS("cls", st, n, t, d), h), n), nil
}
