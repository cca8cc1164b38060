package augment

import (
	"errors"
	"fmt"
	"image"
	"slices"
	"sync"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sources"
)

// Augmenter makes the augmented views of images. It is safe for concurrent
// use: its methods keep their scratch buffers in a sync.Pool, and the stage
// gives each worker its own.
//
// Every random parameter of a view derives from (seed, epoch, index, view)
// alone (SplitMix64 hashing into PCG streams, one stream per transform), so
// a view does not depend on which worker made it, or when.
//
// Cost: about two passes over the output per enabled transform, plus one
// pass over the input image per sample to convert it to float32 planes;
// see BenchmarkAugment.
type Augmenter struct {
	p         params
	maxPixels int
	// mean and std per channel, for 1- and 3-channel views; nil where the
	// config cannot serve that channel count.
	mean, std [4][]float32
	scratch   sync.Pool
}

// scratch holds the buffers of one goroutine.
type scratch struct {
	src  planes
	rz   resizer
	tmp  []float32
	kern []float32
}

// New validates cfg and returns an Augmenter for it.
func New(cfg Config) (*Augmenter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("augment: %w", err)
	}
	a := &Augmenter{p: cfg.params()}
	a.maxPixels = a.p.effectiveMaxPixels()
	// Own copies: the caller may reuse cfg's slices.
	a.p.mean, a.p.std = slices.Clone(a.p.mean), slices.Clone(a.p.std)
	for _, c := range []int{1, 3} {
		a.mean[c] = perChannel(a.p.mean, c)
		a.std[c] = perChannel(a.p.std, c)
	}
	a.scratch.New = func() any { return new(scratch) }
	return a, nil
}

func perChannel(v []float64, c int) []float32 {
	switch len(v) {
	case 1:
		out := make([]float32, c)
		for i := range out {
			out[i] = float32(v[0])
		}
		return out
	case c:
		out := make([]float32, c)
		for i := range out {
			out[i] = float32(v[i])
		}
		return out
	}
	return nil
}

// Workers is the number of workers of the stage.
func (a *Augmenter) Workers() int { return a.p.workers }

// Normalization returns the mean and std the views are normalised with,
// (x − mean) / std, as the config gives them with the defaults filled in:
// one value for every channel, or one per channel. A caller that turns a
// view back into an image (a preview) should use these rather than copy
// the defaults. The slices are new copies, owned by the caller.
func (a *Augmenter) Normalization() (mean, std []float64) {
	return slices.Clone(a.p.mean), slices.Clone(a.p.std)
}

var errEmpty = errors.New("empty image")

// channels returns the output and source-plane channel counts for img.
func (a *Augmenter) channels(img image.Image) (out, src int) {
	gray := isGray(img)
	out = a.p.channels
	if out == 0 {
		out = 3
		if gray {
			out = 1
		}
	}
	src = 3
	if gray || out == 1 {
		src = 1
	}
	return out, src
}

// View writes into dst the augmented view number view of img, for the
// sample at index of epoch, under seed. dst.Data is reused when its
// capacity suffices. The same arguments always give the same floats. An
// empty image, or with the default Size one whose shorter side is over
// MaxSize, is an error (View does not decode, so it is not a skip).
func (a *Augmenter) View(img image.Image, seed int64, epoch int, index int64, view int, dst *pipeline.View) error {
	b := img.Bounds()
	if b.Empty() {
		return errEmpty
	}
	if err := a.checkSize(b); err != nil {
		return err
	}
	sc := a.scratch.Get().(*scratch)
	defer a.scratch.Put(sc)
	outC, srcC := a.channels(img)
	loadPlanes(img, srcC, &sc.src)
	return a.view(sc, outC, viewKey(seed, epoch, index, view), dst)
}

// Pair decodes s (with sources.Decode, when s.Image is nil) and returns its
// two views, made with seed. A sample that cannot be decoded, is empty,
// has more than MaxPixels pixels or, with the default Size, has a shorter
// side over MaxSize gives a *pipeline.SkipError.
// The returned views come from pipeline.ViewData and belong to the caller,
// which may hand them back with pipeline.RecycleView when done.
func (a *Augmenter) Pair(s pipeline.Sample, seed int64) (pipeline.Pair, error) {
	sc := a.scratch.Get().(*scratch)
	defer a.scratch.Put(sc)
	return a.pair(s, seed, sc)
}

func (a *Augmenter) pair(s pipeline.Sample, seed int64, sc *scratch) (pipeline.Pair, error) {
	img, err := sources.Decode(s, a.maxPixels)
	if err != nil {
		return pipeline.Pair{}, err // a *pipeline.SkipError: Decode's every failure is one
	}
	if err := a.checkSize(img.Bounds()); err != nil {
		return pipeline.Pair{}, pipeline.Skip(s.Origin, err)
	}
	outC, srcC := a.channels(img)
	loadPlanes(img, srcC, &sc.src)
	p := pipeline.Pair{Index: s.Index, Label: s.Label, Epoch: s.Epoch}
	size := a.size(&sc.src)
	n := outC * size * size
	for v := range p.Views {
		p.Views[v].Data = pipeline.ViewData(n) // collate recycles it
		if err := a.view(sc, outC, viewKey(seed, s.Epoch, s.Index, v), &p.Views[v]); err != nil {
			return pipeline.Pair{}, fmt.Errorf("%s: %w", s.Origin, err)
		}
	}
	return p, nil
}

// checkSize refuses, with the default Size, an image whose views would be
// over MaxSize on a side.
func (a *Augmenter) checkSize(b image.Rectangle) error {
	w, h := b.Dx(), b.Dy()
	if s := min(w, h); a.p.size == 0 && s > MaxSize {
		return fmt.Errorf("image is %d×%d: with the default size its views would be %d×%d, over the limit of %d×%d; set size",
			w, h, s, s, MaxSize, MaxSize)
	}
	return nil
}

func (a *Augmenter) size(src *planes) int {
	if a.p.size > 0 {
		return a.p.size
	}
	return min(src.w, src.h)
}

// view makes one view of sc.src with outC channels from the random streams
// of key.
func (a *Augmenter) view(sc *scratch, outC int, key uint64, dst *pipeline.View) error {
	p := &a.p
	src := &sc.src
	mean, std := a.mean[outC], a.std[outC]
	if mean == nil || std == nil {
		return fmt.Errorf("augment: mean/std have %d/%d values, a %d-channel view needs 1 or %d",
			len(p.mean), len(p.std), outC, outC)
	}
	size := a.size(src)
	n := size * size
	dst.C, dst.H, dst.W = outC, size, size
	dst.Data = grow(dst.Data, outC*n)
	d := dst.Data

	box := cropBox{0, 0, src.w, src.h}
	if p.cropP > 0 {
		r := newRNG(key, streamCrop)
		if r.bernoulli(p.cropP) {
			box = sampleCrop(&r, src.w, src.h, p.scale, p.ratio)
		}
	}
	var flip bool
	if p.flipP > 0 {
		r := newRNG(key, streamFlip)
		flip = r.bernoulli(p.flipP)
	}
	sc.rz.resize(src, box, size, flip, d[:src.c*n])
	for k := src.c; k < outC; k++ {
		copy(d[k*n:(k+1)*n], d[:n])
	}
	if p.rotOn {
		r := newRNG(key, streamRotation)
		if r.bernoulli(p.rotP) {
			deg := r.uniform(p.degrees[0], p.degrees[1])
			sc.tmp = grow(sc.tmp, outC*n)
			copy(sc.tmp, d)
			rotate(sc.tmp, d, outC, size, deg)
		}
	}
	// Brightness and contrast are an affine map followed by a clip; it is
	// kept pending and fused into the next pass over the pixels.
	var affine bool
	var mul, add float32
	flush := func() {
		if affine {
			applyAffine(d, mul, add)
			affine = false
		}
	}
	if p.jitterOn {
		r := newRNG(key, streamJitter)
		if r.bernoulli(p.jitterP) {
			b, c, s, h := 1.0, 1.0, 1.0, 0.0
			if p.brightness > 0 {
				b = r.factor(p.brightness)
			}
			if p.contrast > 0 {
				c = r.factor(p.contrast)
			}
			if p.sat > 0 {
				s = r.factor(p.sat)
			}
			if p.hue > 0 {
				h = r.uniform(-p.hue, p.hue)
			}
			if b != 1 || c != 1 {
				mul, add = brightnessContrast(d, outC, n, b, c)
				affine = true
			}
			if outC == 3 && s != 1 {
				flush()
				saturate(d, n, s)
			}
			if outC == 3 && h != 0 {
				flush()
				shiftHue(d, n, h)
			}
		}
	}
	if p.grayP > 0 && outC == 3 {
		r := newRNG(key, streamGray)
		if r.bernoulli(p.grayP) {
			flush()
			grayscale(d, n)
		}
	}
	if p.blurOn {
		r := newRNG(key, streamBlur)
		if r.bernoulli(p.blurP) {
			flush()
			sigma := r.uniform(p.sigma[0], p.sigma[1])
			sc.kern = gaussian(sc.kern, sigma, size-1)
			sc.tmp = grow(sc.tmp, n)
			blur(d, sc.tmp, outC, size, sc.kern)
		}
	}
	if p.solarOn {
		r := newRNG(key, streamSolarize)
		if r.bernoulli(p.solP) {
			flush()
			solarize(d, float32(p.solThreshold))
		}
	}
	finish(d, outC, n, affine, mul, add, mean, std)
	return nil
}
