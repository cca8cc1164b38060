package encode

import (
	"fmt"

	"github.com/contrastream/contrastream/pipeline"
)

// The architectures New and NewWeights know.
const (
	// ConvNetS is convnet-s: three conv3x3-BatchNorm-ReLU blocks of 32, 64
	// and 128 channels, a 2×2 max-pool after the first two, a global average
	// pool to 128 features, and the projection head.
	ConvNetS = "convnet-s"
	// ResNet18 is the CIFAR-style ResNet-18 (resnet.go): a 3×3 stem
	// without max-pool, four stages of two BasicBlocks of Width, 2·Width,
	// 4·Width and 8·Width channels, a global average pool to 8·Width
	// features, and the projection head.
	ResNet18 = "resnet18"
	// ViT is a small Vision Transformer (vit.go): a strided-convolution
	// patch embedding of Width dimensions, a class token and learned
	// position embeddings, Depth pre-norm Transformer blocks of Heads
	// heads and an MLP of MLP units, a final LayerNorm, and the class token
	// as the Width features, then the projection head.
	ViT = "vit"
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
	// DefaultResNetWidth is resnet18's Config.Width when it is zero: the
	// standard ResNet-18 of 64 to 512 channels.
	DefaultResNetWidth = 64
	// MaxResNetWidth bounds Config.Width.
	MaxResNetWidth = 1024
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
	// Arch names the architecture: "convnet-s" (the default) or
	// "resnet18".
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
	if c.Arch != ViT {
		for _, f := range []struct {
			name string
			v    int
		}{{"patch", c.Patch}, {"depth", c.Depth}, {"heads", c.Heads}, {"mlp", c.MLP}} {
			if f.v != 0 {
				return &pipeline.FieldError{Field: f.name, Msg: fmt.Sprintf("applies to %s only, got %d", ViT, f.v)}
			}
		}
	}
	switch c.Arch {
	case "", ConvNetS:
		if c.Width != 0 {
			return &pipeline.FieldError{Field: "width", Msg: fmt.Sprintf("applies to %s only (convnet-s has fixed widths), got %d", ResNet18, c.Width)}
		}
	case ResNet18:
		if c.Width < 0 || c.Width > MaxResNetWidth {
			return &pipeline.FieldError{Field: "width", Msg: fmt.Sprintf("must be in [1, %d] (0: %d), got %d", MaxResNetWidth, DefaultResNetWidth, c.Width)}
		}
	case ViT:
		if err := c.validateViT(); err != nil {
			return err
		}
	default:
		return &pipeline.FieldError{Field: "arch", Msg: fmt.Sprintf("unknown architecture %q (known: %q, %q, %q)", c.Arch, ConvNetS, ResNet18, ViT)}
	}
	if c.Hidden < 0 || c.Hidden > MaxWidth {
		return &pipeline.FieldError{Field: "hidden", Msg: fmt.Sprintf("must be in [1, %d] (0: %d), got %d", MaxWidth, DefaultHidden, c.Hidden)}
	}
	if c.Out < 0 || c.Out > MaxWidth {
		return &pipeline.FieldError{Field: "out", Msg: fmt.Sprintf("must be in [1, %d] (0: %d), got %d", MaxWidth, DefaultOut, c.Out)}
	}
	return nil
}

// withDefaults returns c with its zero fields replaced by their defaults.
// WithDefaults returns c with every default filled in (as the encoder is
// built), so that two configs can be compared.
func (c Config) WithDefaults() Config { return c.withDefaults() }

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
	if c.Arch == ResNet18 && c.Width == 0 {
		c.Width = DefaultResNetWidth
	}
	if c.Arch == ViT {
		c = c.vitDefaults()
	}
	return c
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
