package encode

import (
	"fmt"

	"github.com/contrastream/contrastream/pipeline"
	G "gorgonia.org/gorgonia"
)

// # resnet18
//
// The CIFAR-style ResNet-18 of SimCLR's and MoCo's CIFAR experiments,
// under torchvision's state_dict names (so that PyTorch's
// torchvision.models.resnet18 with conv1 replaced by a 3×3 stride-1
// convolution, maxpool by nn.Identity and fc by the head loads our
// weights), for a base width W (Config.Width, 64 by default):
//
//	input N×C×H×W (C = 1 or 3)
//	conv1  conv3x3, stride 1, pad 1, no bias, C→W   bn1  BatchNorm2d(W)  ReLU  (no max-pool)
//	layer1 BasicBlock(W→W),     BasicBlock(W→W)
//	layer2 BasicBlock(W→2W, s2), BasicBlock(2W→2W)
//	layer3 BasicBlock(2W→4W, s2), BasicBlock(4W→4W)
//	layer4 BasicBlock(4W→8W, s2), BasicBlock(8W→8W)
//	global average pool                              → features N×8W
//	head.0 Linear(8W, Hidden)  ReLU  head.2 Linear(Hidden, Out) → projection N×Out
//
// BasicBlock layerL.B with stride s, in → out channels:
//
//	conv1 conv3x3 stride s pad 1 no bias  bn1  ReLU
//	conv2 conv3x3 stride 1 pad 1 no bias  bn2
//	+ identity, or downsample (downsample.0 conv1x1 stride s no bias,
//	  downsample.1 BatchNorm2d) where s ≠ 1 or in ≠ out
//	ReLU
//
// A stride-2 3×3 convolution with pad 1 takes a side h to ⌊(h−1)/2⌋+1,
// so 32×32 images give 32, 16, 8 and 4; 8×8 ones 8, 4, 2 and 1. The
// convolutions are convOp, the BatchNorms batchNormOp (bn1 with its ReLU
// fused), the residual sum and its ReLU residualOp (resnet_op.go).
//
// At W = 64 on 3 channels the backbone has 11,168,832 parameters, plus
// the head's (82,176 for 512→128→128).
//
// Cost: one training step (forward and backward) of the full network at
// shard size 256 on 32×32×3 is about 850 GFLOP. A MoCo step at batch 256
// (two replicas of 128: query forward and backward, key forward) took
// 7.3–7.4 s on this project's 2-core machine, against PyTorch's 6.6–6.7 s
// (contrastream bench with arch resnet18, and
// cmd/reference/resnet_reference.py; README, Performance), with a peak
// RSS of 5.1 GB against 2.3 GB: a replica keeps every activation and its
// gradient, about 15 MB per 32×32 image.

// ResNet18 is the CIFAR-style ResNet-18: a 3×3 stem without max-pool,
// four stages of two BasicBlocks of Width, 2·Width, 4·Width and 8·Width
// channels, a global average pool to 8·Width features, and the projection
// head. Its one option is Width.
const ResNet18 = "resnet18"

// resnet18's defaults and bounds.
const (
	// DefaultResNetWidth is resnet18's Config.Width when it is zero: the
	// standard ResNet-18 of 64 to 512 channels.
	DefaultResNetWidth = 64
	// MaxResNetWidth bounds Config.Width.
	MaxResNetWidth = 1024
)

func init() { RegisterArch(resnet18Arch{}) }

// resnet18Arch is resnet18 as an Arch.
type resnet18Arch struct{}

func (resnet18Arch) Name() string                   { return ResNet18 }
func (resnet18Arch) Fields() []string               { return []string{"width"} }
func (resnet18Arch) CheckInput(Config, Input) error { return nil }
func (resnet18Arch) Features(c Config) int          { return resnet18Features(c.Width) }

func (resnet18Arch) Defaults(c Config) Config {
	if c.Width == 0 {
		c.Width = DefaultResNetWidth
	}
	return c
}

func (resnet18Arch) Validate(c Config) error {
	if c.Width < 0 || c.Width > MaxResNetWidth {
		return &pipeline.FieldError{Field: "width", Msg: fmt.Sprintf("must be in [1, %d] (0: %d), got %d", MaxResNetWidth, DefaultResNetWidth, c.Width)}
	}
	return nil
}

func (resnet18Arch) Params(w *Weights, in Input, ini initer) { w.resnet18Params(in.C, ini.uniform) }

// Build adds resnet18's backbone and its global average pool on x.
func (resnet18Arch) Build(nb *netBuilder, x *act, c Config) (*G.Node, error) {
	h, err := nb.resnet18(x, c.Width)
	if err != nil {
		return nil, err
	}
	return nb.gap(h), nil
}

// Count counts resnet18's layers on in.
func (resnet18Arch) Count(c Config, in Input) layerCounts {
	var lc layerCounts
	ch, h, w := c.Width, in.H, in.W
	h, w = lc.addConv(in.C, h, w, ch, 3, 1, 1)
	for _, b := range resnet18Blocks(c.Width) {
		oh, ow := lc.addConv(b.in, h, w, b.out, 3, b.str, 1)
		lc.addConv(b.out, oh, ow, b.out, 3, 1, 1)
		if b.downsample() {
			lc.addConv(b.in, h, w, b.out, 1, b.str, 0)
		}
		h, w, ch = oh, ow, b.out
		lc.out += float64(ch) * float64(h*w) // the residual sum
		lc.ops++
	}
	bn := float64(c.Width) // the channels of every BatchNorm
	for _, b := range resnet18Blocks(c.Width) {
		bn += 2 * float64(b.out)
		if b.downsample() {
			bn += float64(b.out)
		}
	}
	lc.params = lc.conv + 2*bn
	return lc
}

// resnet18Features is the size of resnet18's features at base width w.
func resnet18Features(width int) int { return 8 * width }

// resBlock is one BasicBlock: its name prefix ("layer2.0"), channels in
// and out, and the stride of its first convolution.
type resBlock struct {
	prefix       string
	in, out, str int
}

// downsample reports whether the block's shortcut is a 1×1 convolution
// and BatchNorm rather than the identity.
func (b resBlock) downsample() bool { return b.str != 1 || b.in != b.out }

// resnet18Blocks lists the eight BasicBlocks of resnet18 at base width w,
// in order.
func resnet18Blocks(width int) []resBlock {
	var bs []resBlock
	in := width
	for l := 1; l <= 4; l++ {
		out := width << (l - 1)
		for b := 0; b < 2; b++ {
			str := 1
			if l > 1 && b == 0 {
				str = 2
			}
			bs = append(bs, resBlock{prefix: fmt.Sprintf("layer%d.%d", l, b), in: in, out: out, str: str})
			in = out
		}
	}
	return bs
}

// addConv appends a bias-free convolution's weight, out×in×k×k, drawn with
// uniform (bound 1/√(in·k·k)).
func (w *Weights) addConv(name string, in, out, k int, uniform func(t *Tensor, fanIn int)) {
	t := newTensor(name+".weight", false, out, in, k, k)
	uniform(t, in*k*k)
	w.Params = append(w.Params, t)
}

// addBN appends a BatchNorm2d's scale (1) and shift (0) to the parameters
// and its running mean (0) and variance (1) to the buffers.
func (w *Weights) addBN(name string, c int) {
	g := newTensor(name+".weight", true, c)
	for i := range g.Data {
		g.Data[i] = 1
	}
	w.Params = append(w.Params, g, newTensor(name+".bias", true, c))
	rv := newTensor(name+".running_var", false, c)
	for i := range rv.Data {
		rv.Data[i] = 1
	}
	w.Buffers = append(w.Buffers, newTensor(name+".running_mean", false, c), rv)
}

// resnet18Params appends resnet18's backbone parameters and buffers for c
// input channels, in torchvision's state_dict order.
func (w *Weights) resnet18Params(c int, uniform func(t *Tensor, fanIn int)) {
	width := w.cfg.Width
	w.addConv("conv1", c, width, 3, uniform)
	w.addBN("bn1", width)
	for _, b := range resnet18Blocks(width) {
		w.addConv(b.prefix+".conv1", b.in, b.out, 3, uniform)
		w.addBN(b.prefix+".bn1", b.out)
		w.addConv(b.prefix+".conv2", b.out, b.out, 3, uniform)
		w.addBN(b.prefix+".bn2", b.out)
		if b.downsample() {
			w.addConv(b.prefix+".downsample.0", b.in, b.out, 1, uniform)
			w.addBN(b.prefix+".downsample.1", b.out)
		}
	}
}

// conv adds a bias-free convolution of x (weight name+".weight") with out
// filters of k×k, stride s, padding p.
func (nb *netBuilder) conv(name string, x *act, out, k, s, p int) (*act, error) {
	geo, err := newConvGeom(nb.n, x.c, x.h, x.w, out, k, s, p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	y := G.Must(G.ApplyOp(newConvOp(name, nb.st, geo), x.node, nb.param[name+".weight"]))
	return &act{node: y, c: out, h: geo.oh, w: geo.ow}, nil
}

// bn adds a BatchNorm2d of x, with the ReLU fused when relu is set.
func (nb *netBuilder) bn(name string, x *act, relu bool) *act {
	op := nb.batchNorm(name, x.c, x.h, x.w, relu)
	y := G.Must(G.ApplyOp(op, x.node, nb.param[name+".weight"], nb.param[name+".bias"]))
	return &act{node: y, c: x.c, h: x.h, w: x.w}
}

// block adds BasicBlock b on x.
func (nb *netBuilder) block(b resBlock, x *act) (*act, error) {
	h, err := nb.conv(b.prefix+".conv1", x, b.out, 3, b.str, 1)
	if err != nil {
		return nil, err
	}
	h = nb.bn(b.prefix+".bn1", h, true)
	if h, err = nb.conv(b.prefix+".conv2", h, b.out, 3, 1, 1); err != nil {
		return nil, err
	}
	h = nb.bn(b.prefix+".bn2", h, false)
	short := x
	if b.downsample() {
		if short, err = nb.conv(b.prefix+".downsample.0", x, b.out, 1, b.str, 0); err != nil {
			return nil, err
		}
		short = nb.bn(b.prefix+".downsample.1", short, false)
	}
	if short.h != h.h || short.w != h.w {
		return nil, fmt.Errorf("%s: shortcut is %d×%d, residual %d×%d", b.prefix, short.h, short.w, h.h, h.w)
	}
	y := G.Must(G.ApplyOp(newResidualOp(b.prefix, nb.st, nb.n, h.c, h.h, h.w), h.node, short.node))
	return &act{node: y, c: h.c, h: h.h, w: h.w}, nil
}

// resnet18 adds resnet18's backbone at base width w on x and returns
// layer4's output.
func (nb *netBuilder) resnet18(x *act, width int) (*act, error) {
	h, err := nb.conv("conv1", x, width, 3, 1, 1)
	if err != nil {
		return nil, err
	}
	h = nb.bn("bn1", h, true)
	for _, b := range resnet18Blocks(width) {
		if h, err = nb.block(b, h); err != nil {
			return nil, err
		}
	}
	return h, nil
}
