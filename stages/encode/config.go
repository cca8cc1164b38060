package encode

import (
	"fmt"
	"slices"
	"strings"

	"github.com/contrastream/contrastream/pipeline"
)

// Defaults and bounds of Config and Input.
const (
	// DefaultArch is the architecture when Config.Arch is empty.
	DefaultArch = ConvNetS
	// DefaultHidden is the width of the head's hidden layer when
	// Config.Hidden is zero.
	DefaultHidden = 128
	// DefaultOut is the projection's size when Config.Out is zero.
	DefaultOut = 128
	// MaxWidth bounds Config.Hidden and Config.Out.
	MaxWidth = 1 << 14
	// MaxSide bounds the input's height and width.
	MaxSide = 4096
	// MaxShard bounds the shard size of a Replica.
	MaxShard = 1 << 16
)

// BatchNorm's constants, PyTorch's defaults: the running statistics move by
// BNMomentum of the batch's after each training forward pass, and BNEps is
// added to the variance before its square root.
const (
	BNMomentum = 0.1
	BNEps      = 1e-5
)

// Config describes an encoder. Its zero value is convnet-s with a
// Linear(128,128)-ReLU-Linear(128,128) projection head, the reference's.
type Config struct {
	// Arch names the architecture: "convnet-s" (the default), "resnet18",
	// "vit", or another registered with RegisterArch (ArchNames lists
	// them).
	Arch string `yaml:"arch"`
	// Hidden is the width of the projection head's hidden layer, in
	// [1, MaxWidth]. Default 128.
	Hidden int `yaml:"hidden"`
	// Out is the size of the projection (the head's output, not
	// normalised), in [1, MaxWidth]. Default 128.
	Out int `yaml:"out"`
	// Width is resnet18's base width, in [1, MaxResNetWidth]: the channels
	// of its stem and layer1, doubled by each of layer2, layer3 and layer4
	// (so 8·Width features). Default 64, the standard network; smaller
	// widths give the same topology at a fraction of the cost. For vit it
	// is the embedding width (and the features' size), in
	// [1, MaxViTWidth], a multiple of Heads; default 64. convnet-s has
	// fixed widths: Width must be 0 for it.
	Width int `yaml:"width"`
	// Patch is vit's patch size: the image is cut into Patch×Patch
	// patches, so Patch must divide the image's height and width. Default
	// 7 (16 patches of a 28×28 image). vit only.
	Patch int `yaml:"patch"`
	// Depth is vit's number of Transformer blocks, in [1, MaxViTDepth].
	// Default 2. vit only.
	Depth int `yaml:"depth"`
	// Heads is vit's number of attention heads, dividing Width. Default
	// 4. vit only.
	Heads int `yaml:"heads"`
	// MLP is the hidden width of vit's MLPs, in [1, MaxWidth]. Default
	// 128. vit only.
	MLP int `yaml:"mlp"`
}

// Validate reports the first impossible value as a *pipeline.FieldError
// naming the field as the flow's YAML spells it. The zero Config is valid.
func (c Config) Validate() error {
	a, ok := lookupArch(c.Arch)
	if !ok {
		known := ArchNames()
		for i, n := range known {
			known[i] = fmt.Sprintf("%q", n)
		}
		return &pipeline.FieldError{Field: "arch", Msg: fmt.Sprintf("unknown architecture %q (known: %s)", c.Arch, strings.Join(known, ", "))}
	}
	for _, f := range archFields {
		if v := f.get(c); v != 0 && !slices.Contains(a.Fields(), f.name) {
			return &pipeline.FieldError{Field: f.name, Msg: fmt.Sprintf("applies to %s only, got %d", archsReading(f.name), v)}
		}
	}
	if err := a.Validate(c); err != nil {
		return err
	}
	if c.Hidden < 0 || c.Hidden > MaxWidth {
		return &pipeline.FieldError{Field: "hidden", Msg: fmt.Sprintf("must be in [1, %d] (0: %d), got %d", MaxWidth, DefaultHidden, c.Hidden)}
	}
	if c.Out < 0 || c.Out > MaxWidth {
		return &pipeline.FieldError{Field: "out", Msg: fmt.Sprintf("must be in [1, %d] (0: %d), got %d", MaxWidth, DefaultOut, c.Out)}
	}
	return nil
}

// archFields are the fields of Config that only some architectures read
// (those whose Arch.Fields name them), by YAML name, in the order Validate
// checks them.
var archFields = []struct {
	name string
	get  func(Config) int
}{
	{"patch", func(c Config) int { return c.Patch }},
	{"depth", func(c Config) int { return c.Depth }},
	{"heads", func(c Config) int { return c.Heads }},
	{"mlp", func(c Config) int { return c.MLP }},
	{"width", func(c Config) int { return c.Width }},
}

// WithDefaults returns c with every default filled in (as the encoder is
// built), so that two configs can be compared.
func (c Config) WithDefaults() Config { return c.withDefaults() }

// withDefaults returns c with its zero fields replaced by their defaults:
// the architecture's, then the head's.
func (c Config) withDefaults() Config {
	if c.Arch == "" {
		c.Arch = DefaultArch
	}
	if c.Hidden == 0 {
		c.Hidden = DefaultHidden
	}
	if c.Out == 0 {
		c.Out = DefaultOut
	}
	if a, ok := lookupArch(c.Arch); ok {
		c = a.Defaults(c)
	}
	return c
}

// arch is c's architecture, which Validate has checked is registered.
func (c Config) arch() Arch {
	a, ok := lookupArch(c.Arch)
	if !ok {
		panic(fmt.Sprintf("encode: unknown architecture %q (Config not validated)", c.Arch))
	}
	return a
}

// Input is the shape of one input image, channels × height × width, as the
// data gives it (pipeline.Batch's C, H and W).
type Input struct {
	C, H, W int
}

// Len is the number of values of one image.
func (in Input) Len() int { return in.C * in.H * in.W }

// Validate reports an input shape the encoder cannot take: channels other
// than 1 or 3, or a side under 4 (convnet-s halves it twice) or over
// MaxSide.
func (in Input) Validate() error {
	if in.C != 1 && in.C != 3 {
		return fmt.Errorf("encode: input has %d channels, want 1 or 3", in.C)
	}
	if in.H < 4 || in.W < 4 || in.H > MaxSide || in.W > MaxSide {
		return fmt.Errorf("encode: input is %d×%d, want sides in [4, %d] (convnet-s max-pools twice)", in.H, in.W, MaxSide)
	}
	return nil
}

func (in Input) String() string { return fmt.Sprintf("%d×%d×%d", in.C, in.H, in.W) }
