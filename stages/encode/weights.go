package encode

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/contrastream/contrastream/sinks/safetensors"
)

// Tensor is one named float32 array of an encoder: a parameter or a
// BatchNorm running statistic. Data holds the values in row-major order
// (PyTorch's layout: a convolution's weight is out×in×kh×kw, a Linear's
// out×in).
type Tensor struct {
	// Name is the PyTorch state_dict name, e.g. "backbone.0.weight".
	Name string
	// Shape lists the dimensions.
	Shape []int
	// Data holds the product of Shape values.
	Data []float32
	// NoDecay marks a bias or a normalisation parameter, which optimizers
	// usually exclude from weight decay. It is false for buffers.
	NoDecay bool
}

func newTensor(name string, noDecay bool, shape ...int) *Tensor {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return &Tensor{Name: name, Shape: shape, Data: make([]float32, n), NoDecay: noDecay}
}

func (t *Tensor) clone() *Tensor {
	c := *t
	c.Shape = slices.Clone(t.Shape)
	c.Data = slices.Clone(t.Data)
	return &c
}

// CopyTensors copies the values of src into dst, matching tensors by name;
// every tensor of dst must have one of the same name and shape in src.
// Use it to move BatchNorm statistics between a Replica and its Weights.
func CopyTensors(dst, src []*Tensor) error {
	by := make(map[string]*Tensor, len(src))
	for _, t := range src {
		by[t.Name] = t
	}
	for _, d := range dst {
		s, ok := by[d.Name]
		if !ok {
			return fmt.Errorf("encode: no tensor %q to copy from", d.Name)
		}
		if !slices.Equal(s.Shape, d.Shape) {
			return fmt.Errorf("encode: tensor %q has shape %v, want %v", d.Name, s.Shape, d.Shape)
		}
		copy(d.Data, s.Data)
	}
	return nil
}

// The head's layers.
const (
	head0 = "head.0"
	head2 = "head.2"
)

// Weights is one set of an encoder's weights: its parameters (in PyTorch
// state_dict order) and its BatchNorm running statistics (buffers).
//
// Replicas made from Weights read the parameters' Data in place, so an
// optimizer that updates Data updates every replica; it must not do so
// while a replica is running. Weights are not safe for concurrent
// modification.
type Weights struct {
	cfg Config
	in  Input
	// Params are the learnable parameters, in state_dict order.
	Params []*Tensor
	// Buffers are the BatchNorm running means and variances, in
	// state_dict order (PyTorch's num_batches_tracked is not kept).
	Buffers []*Tensor
}

// NewWeights returns freshly initialised weights for an encoder of cfg on
// images of shape in, with PyTorch's default initialisation: convolution
// and Linear weights and Linear biases uniform in ±1/√fan_in (Kaiming
// uniform with a = √5), BatchNorm scales 1 and shifts 0, running means 0
// and variances 1 (vit: timm's; see its Arch). The draws come from rng;
// nil means a PCG seeded (0, 0).
func NewWeights(cfg Config, in Input, rng *rand.Rand) (*Weights, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	if err := in.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	a := cfg.arch()
	if err := a.CheckInput(cfg, in); err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	if rng == nil {
		rng = rand.New(rand.NewPCG(0, 0))
	}
	ini := initer{rng: rng}
	w := &Weights{cfg: cfg, in: in}
	a.Params(w, in, ini)
	hi, custom := a.(headIniter)
	for _, l := range []struct {
		name    string
		in, out int
	}{{head0, w.Features(), cfg.Hidden}, {head2, cfg.Hidden, cfg.Out}} {
		lw := newTensor(l.name+".weight", false, l.out, l.in)
		lb := newTensor(l.name+".bias", true, l.out)
		if custom {
			hi.initHead(lw, lb, l.in, ini)
		} else {
			ini.uniform(lw, l.in)
			ini.uniform(lb, l.in)
		}
		w.Params = append(w.Params, lw, lb)
	}
	return w, nil
}

// Config is the configuration the weights were made for, defaults filled
// in.
func (w *Weights) Config() Config { return w.cfg }

// Input is the image shape the weights were made for.
func (w *Weights) Input() Input { return w.in }

// Features is the size of the encoder's features (the representation
// before the head): 128 for convnet-s, 8·Width (512) for resnet18, Width
// (64) for vit; its Arch's Features.
func (w *Weights) Features() int { return w.cfg.Features() }

// Out is the size of the projection.
func (w *Weights) Out() int { return w.cfg.Out }

// Tensor returns the parameter or buffer called name, or nil.
func (w *Weights) Tensor(name string) *Tensor {
	for _, t := range w.Params {
		if t.Name == name {
			return t
		}
	}
	for _, t := range w.Buffers {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// all lists the parameters then the buffers.
func (w *Weights) all() []*Tensor {
	return append(slices.Clip(w.Params), w.Buffers...)
}

// Load copies every parameter and buffer from f, where each is stored as
// prefix + its name (prefix "" for a checkpoint's model.safetensors,
// "param." for the test vectors). Every tensor must be there with its
// shape; tensors of f that the encoder does not have are ignored. On error
// nothing is changed.
func (w *Weights) Load(f *safetensors.File, prefix string) error {
	all := w.all()
	src := make([][]float32, len(all))
	for i, t := range all {
		d, err := f.F32(prefix+t.Name, t.Shape...)
		if err != nil {
			return fmt.Errorf("encode: loading %s weights (%s): %w", w.cfg.Arch, w.in, err)
		}
		src[i] = d
	}
	for i, t := range all {
		copy(t.Data, src[i])
	}
	return nil
}

// LoadFile reads the safetensors file at path and loads it as Load does.
func (w *Weights) LoadFile(path, prefix string) error {
	f, err := safetensors.Read(path)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	if err := w.Load(f, prefix); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// SafeTensors returns the parameters and buffers as safetensors tensors
// named prefix + their name, sharing w's memory.
func (w *Weights) SafeTensors(prefix string) map[string]safetensors.Tensor {
	m := make(map[string]safetensors.Tensor, len(w.Params)+len(w.Buffers))
	for _, t := range w.all() {
		m[prefix+t.Name] = safetensors.Tensor{DType: "F32", Shape: t.Shape, F32: t.Data}
	}
	return m
}

// Save writes the parameters and buffers to a safetensors file at path
// under their PyTorch names, with metadata meta (which may be nil) plus
// "arch" and "input".
func (w *Weights) Save(path string, meta map[string]string) error {
	m := map[string]string{"arch": w.cfg.Arch, "input": fmt.Sprintf("%dx%dx%d", w.in.C, w.in.H, w.in.W)}
	for k, v := range meta {
		m[k] = v
	}
	return safetensors.Write(path, w.SafeTensors(""), m)
}

// Clone returns a deep copy of w.
func (w *Weights) Clone() *Weights {
	c := &Weights{cfg: w.cfg, in: w.in}
	for _, t := range w.Params {
		c.Params = append(c.Params, t.clone())
	}
	for _, t := range w.Buffers {
		c.Buffers = append(c.Buffers, t.clone())
	}
	return c
}

// CopyFrom copies src's parameters and buffers into w; both must be of the
// same architecture and shapes.
func (w *Weights) CopyFrom(src *Weights) error {
	if len(src.Params) != len(w.Params) || len(src.Buffers) != len(w.Buffers) {
		return errors.New("encode: CopyFrom: weights of different architectures")
	}
	if err := CopyTensors(w.Params, src.Params); err != nil {
		return err
	}
	return CopyTensors(w.Buffers, src.Buffers)
}
