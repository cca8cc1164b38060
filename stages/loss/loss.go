package loss

import (
	"fmt"
	"math"

	"github.com/contrastream/contrastream/pipeline"
)

// Loss computes a contrastive loss of a batch's embeddings and its
// gradient with respect to them. InfoNCE, NTXent and SupCon implement it;
// Register makes another known to Config and New.
//
// A Loss keeps float64 scratch buffers between calls, so that a step of a
// given shape allocates nothing after the first; it is therefore not safe
// for concurrent use. Use one value per training loop.
type Loss interface {
	// Name is the name of the loss's Kind: "crossentropy", "infonce",
	// "ntxent", "supcon" or that of a loss registered since.
	Name() string
	// Compute reads in and writes the loss, its gradient and the metrics
	// into out, reusing out.Grad's buffers. It returns an error, and
	// leaves out unspecified, when in's shapes do not fit together (or,
	// a bug, when one of its goroutines panicked: the error holds the
	// panic and its stack).
	Compute(in Inputs, out *Outputs) error
}

// Inputs are one batch's embeddings as the encoders produced them: raw,
// not normalised (every loss L2-normalises its inputs itself, and its
// gradient goes through that normalisation). The loss only reads them.
type Inputs struct {
	// Z[v] holds view v's embeddings, N×D float32 in row-major order: row i
	// is sample i. For InfoNCE, Z[0] is the query and Z[1] the key; for
	// a loss of one view (crossentropy: Z[0] are a classifier's logits),
	// Z[1] may be empty.
	Z [2][]float32
	// N is the number of samples in the batch, padding included; D is the
	// embedding size. len(Z[v]) must be N×D.
	N, D int
	// Labels are the samples' classes, len N, for a loss that needs them
	// (Needs.Labels: SupCon, CrossEntropy; the others ignore them). A
	// label of a valid sample must be ≥ 0 (CrossEntropy: < D, the number
	// of classes).
	Labels []int64
	// Valid is the number of real samples, as pipeline.Batch.Valid: samples
	// Valid…N−1 are padding and take no part in the loss (neither anchor,
	// positive, negative, nor metric), and their gradient rows are zero.
	// 0 means N (no padding); otherwise 1 ≤ Valid ≤ N.
	Valid int
	// Queue holds K keys of earlier batches, K×D float32 row-major, for a
	// loss that needs them (Needs.Queue: InfoNCE). Its rows need not be
	// normalised; the loss normalises each.
	Queue []float32
	// K is the number of queue rows (Needs.Queue only), ≥ 1.
	K int
}

// ValidN returns the number of real samples: Valid, or N when Valid is 0.
func (in *Inputs) ValidN() int {
	if in.Valid == 0 {
		return in.N
	}
	return in.Valid
}

// Check reports the first way in which in's shapes (N, D, Valid and the
// lengths of both views' Z) do not fit together, as an error that names
// the loss called name; what a loss reads beyond them (Labels, Queue) it
// checks itself. A loss of one view (Kind.Views 1) calls CheckViews.
func (in *Inputs) Check(name string) error { return in.CheckViews(name, 2) }

// CheckViews is Check for a loss that reads the first views views (1 or
// 2) of Z: with 1, Z[1] is not looked at.
func (in *Inputs) CheckViews(name string, views int) error {
	if in.N < 1 || in.D < 1 {
		return fmt.Errorf("loss %s: N = %d, D = %d; want both ≥ 1", name, in.N, in.D)
	}
	if in.Valid < 0 || in.Valid > in.N {
		return fmt.Errorf("loss %s: Valid = %d, want 0 (all) or 1…N = %d", name, in.Valid, in.N)
	}
	for v := range views {
		if len(in.Z[v]) != in.N*in.D {
			return fmt.Errorf("loss %s: len(Z[%d]) = %d, want N×D = %d×%d = %d", name, v, len(in.Z[v]), in.N, in.D, in.N*in.D)
		}
	}
	return nil
}

// Outputs are what a Loss computes. The caller owns it and may reuse it
// from step to step: Compute reslices Grad's buffers and allocates only
// when one is too short.
type Outputs struct {
	// Loss is the mean loss over the anchors that count (see Anchors).
	Loss float64
	// Grad[v] is dL/dZ[v], N×D float32 row-major; rows of padding are zero.
	// InfoNCE gives no gradient for the key, and a loss of one view
	// (CrossEntropy) none for Z[1]: they set Grad[1] to length 0 (keeping
	// its capacity).
	Grad [2][]float32
	// PosCos is the mean cosine similarity of the positive pairs (anchor,
	// positive), over all such ordered pairs of the anchors that count.
	PosCos float64
	// NegCos is the mean cosine similarity of the negative pairs (anchor,
	// negative), likewise.
	NegCos float64
	// Top1 is the fraction of anchors whose most similar candidate (the
	// largest logit) is a positive: MoCo's "acc@1"; for CrossEntropy, the
	// fraction of valid samples whose largest logit is their label (the
	// batch's top-1).
	Top1 float64
	// Anchors is the number of anchors the mean runs over: Valid for
	// InfoNCE and CrossEntropy, 2×Valid for NTXent and SupCon, less any
	// SupCon anchor without a positive.
	Anchors int
}

// setGrad writes g (rows×d float64) into the first rows of dst (n×d
// float32, resliced or allocated) and zeroes the rest.
func setGrad(dst []float32, g []float64, rows, n, d int) []float32 {
	dst = grow(dst, n*d)
	toFloat32(dst, g[:rows*d])
	clear(dst[rows*d:])
	return dst
}

// MinTemperature is the smallest temperature Validate accepts: below it the
// logits (cos/T) reach the thousands and the softmax is a hard max.
const MinTemperature = 1e-4

// validateTemperature returns a *pipeline.FieldError for t unless it is nil
// (the default) or a finite number ≥ MinTemperature. An explicit 0 is an
// error like any other impossible value: a flow that writes
// "temperature: 0" means something, and it is not the default.
func validateTemperature(t *float64) error {
	if t == nil {
		return nil
	}
	if v := *t; math.IsNaN(v) || math.IsInf(v, 0) || v < MinTemperature {
		return fieldError("temperature", fmt.Sprintf("must be a finite number ≥ %g (leave it out for the loss's default), got %g", MinTemperature, v))
	}
	return nil
}

func fieldError(field, msg string) error { return &pipeline.FieldError{Field: field, Msg: msg} }

// orDefault returns *t, or def when t is nil.
func orDefault(t *float64, def float64) float64 {
	if t == nil {
		return def
	}
	return *t
}

// Config chooses a loss and its temperature, for flow specs. Its zero
// value is InfoNCE at T = 0.2 (MoCo v2).
type Config struct {
	// Type is the loss, a registered Kind's name: "infonce" (MoCo, with a
	// queue of negatives), "ntxent" (SimCLR), "supcon" (supervised, needs
	// labels) or any loss registered since. Default "infonce".
	Type string `yaml:"type"`
	// Temperature divides the cosine similarities, ≥ MinTemperature
	// (in Go: new(0.07)). nil (the field left out) means the loss's own
	// default (Kind.DefaultTemperature): 0.2 for infonce, 0.5 for ntxent,
	// 0.1 for supcon; 0 is an error, and so is any temperature for a loss
	// that has none.
	Temperature *float64 `yaml:"temperature"`
	// Workers is the number of goroutines a call may use, at most
	// MaxWorkers. Default runtime.GOMAXPROCS(0) at New. The results do not
	// depend on it.
	Workers int `yaml:"workers"`
}

// Validate returns a *pipeline.FieldError naming "type" (not a
// registered loss), "temperature" or "workers" when the field is
// impossible.
func (c Config) Validate() error {
	k, ok := Lookup(c.Type)
	if !ok {
		return fieldError("type", fmt.Sprintf("unknown loss %q; want %s", c.Type, orList(Names())))
	}
	if k.DefaultTemperature == 0 && c.Temperature != nil {
		return fieldError("temperature", fmt.Sprintf("loss %s has no temperature: leave it out, got %g", k.Name, *c.Temperature))
	}
	if err := validateTemperature(c.Temperature); err != nil {
		return err
	}
	return validateWorkers(c.Workers)
}

// New returns the loss that c describes, built by its registered Kind,
// or c.Validate's error.
func New(c Config) (Loss, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	k, _ := Lookup(c.Type)
	c.Type = k.Name
	if c.Temperature == nil && k.DefaultTemperature != 0 {
		c.Temperature = new(k.DefaultTemperature)
	}
	return k.New(c)
}

// MemoryBytes estimates what the loss of c keeps between calls for
// batches of n samples with embeddings of d values (and, for a loss with
// a queue, k keys): its Kind's MemoryBytes, plus the loss stage's own
// buffers (the gradient it hands on and the alignment and uniformity
// scratch, 16·n·d bytes). InfoNCE keeps about 72·n·d + 4·n·k + 12·k·d
// bytes in all, NTXent and SupCon about 32·n² + 96·n·d, quadratic in the
// batch size (the (2n)² float64 similarities). An unknown type counts
// the stage's buffers only.
func (c Config) MemoryBytes(n, d, k int) int64 {
	nf, df := float64(n), float64(d)
	stage := saturate(4 * (2*nf*df + 2*nf*df)) // Outputs.Grad, AlignUniform's scratch
	if kd, ok := Lookup(c.Type); ok && kd.MemoryBytes != nil {
		return satAdd(stage, max(kd.MemoryBytes(c, n, d, k), 0))
	}
	return stage
}

// SplitViews copies features laid out n×2×d (sample, view, dim), as
// PyTorch's SupCon code takes them, into z[0] and z[1] (n×d each),
// reslicing or allocating them, and returns them.
func SplitViews(z [2][]float32, features []float32, n, d int) [2][]float32 {
	for v := range 2 {
		z[v] = grow(z[v], n*d)
		for i := range n {
			copy(z[v][i*d:(i+1)*d], features[(2*i+v)*d:(2*i+v+1)*d])
		}
	}
	return z
}

// JoinViews is the inverse of SplitViews: it writes z[0] and z[1] (n×d
// each) into dst laid out n×2×d, reslicing or allocating it, and returns
// it.
func JoinViews(dst []float32, z [2][]float32, n, d int) []float32 {
	dst = grow(dst, 2*n*d)
	for v := range 2 {
		for i := range n {
			copy(dst[(2*i+v)*d:(2*i+v+1)*d], z[v][i*d:(i+1)*d])
		}
	}
	return dst
}
