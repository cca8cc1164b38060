package encode

import (
	G "gorgonia.org/gorgonia"
)

// ConvNetS is convnet-s, the default architecture and the reference
// encoder of cmd/reference/torch_reference.py (see the package doc): three
// conv3x3-BatchNorm-ReLU blocks of 32, 64 and 128 channels, a 2×2 max-pool
// after the first two, a global average pool to 128 features, and the
// projection head. It has no options: Width, Patch, Depth, Heads and MLP
// must be 0.
const ConvNetS = "convnet-s"

func init() { RegisterArch(convnetSArch{}) }

// convnetSArch is convnet-s as an Arch. Its graph is built by
// netBuilder.convnetS (replica.go).
type convnetSArch struct{ archBase }

func (convnetSArch) Name() string        { return ConvNetS }
func (convnetSArch) Features(Config) int { return convnetSFeatures }

// The layers of convnet-s, by their PyTorch names (index in the
// nn.Sequential backbone and head).
type convBlock struct {
	conv, bn string // "backbone.0", "backbone.1"
	out      int    // output channels
	pool     bool   // 2×2 max-pool after the ReLU
}

var convnetS = []convBlock{
	{"backbone.0", "backbone.1", 32, true},
	{"backbone.4", "backbone.5", 64, true},
	{"backbone.8", "backbone.9", 128, false},
}

// convnetSFeatures is the size of convnet-s's features (the global average
// pool of the last block).
const convnetSFeatures = 128

// Params appends convnet-s's backbone parameters and buffers, in
// state_dict order.
func (convnetSArch) Params(w *Weights, in Input, ini initer) {
	c := in.C
	for _, b := range convnetS {
		w.addConv(b.conv, c, b.out, 3, ini.uniform)
		w.addBN(b.bn, b.out)
		c = b.out
	}
}

// Build adds convnet-s's backbone and its global average pool on x.
func (convnetSArch) Build(nb *netBuilder, x *act, _ Config) (*G.Node, error) {
	h, err := nb.convnetS(x)
	if err != nil {
		return nil, err
	}
	return nb.gap(h), nil
}

// Count counts convnet-s's layers on in.
func (convnetSArch) Count(_ Config, in Input) layerCounts {
	var lc layerCounts
	ch, h, w := in.C, in.H, in.W
	for _, b := range convnetS {
		h, w = lc.addConv(ch, h, w, b.out, 3, 1, 1)
		ch = b.out
		if b.pool {
			h, w = h/2, w/2
			lc.out += float64(ch * h * w)
			lc.saved += float64(ch * h * w) // the argmax indices, int32
			lc.ops++
		}
	}
	lc.params = lc.conv
	for _, b := range convnetS {
		lc.params += 2 * float64(b.out) // BatchNorm's scale and shift
	}
	return lc
}
