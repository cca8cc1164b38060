package augment

import (
	"fmt"
	"math"
	"runtime"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sources"
)

// Config describes the augmentation recipe. Its zero value is the recipe of
// the PyTorch reference, cmd/reference/torch_reference.py in this
// repository: random resized crop (area scale U(0.3, 1), log-uniform aspect
// ratio in (3/4, 4/3), bilinear), horizontal flip with p = 0.5, brightness
// then contrast jitter with factors U(0.6, 1.4) always applied, and
// normalisation (x − 0.286) / 0.353.
//
// A field whose default is not zero and for which zero is a meaningful
// setting is a pointer: nil means the default, and Float(0) (YAML: 0) turns
// it off. Every other field uses its zero value for its default.
//
// Validate bounds every field that sets a size or a cost, so that no value
// from a flow file or --set can make a view take gigabytes or a kernel take
// minutes: Size ≤ MaxSize and Size² ≤ MaxPixels, Blur.Sigma ≤ MaxSigma,
// Workers ≤ MaxWorkers, MaxPixels ≤ MaxMaxPixels.
type Config struct {
	// Size is the side of the square output views, at most MaxSize and
	// with Size² at most MaxPixels. Default: the input image's shorter
	// side, per image; set it for datasets whose images differ in size,
	// since batches need one shape. With the default, a sample whose
	// shorter side is over MaxSize is skipped (a *pipeline.SkipError that
	// says to set size), since its views alone would take gigabytes. An
	// input that is not square is resized to Size×Size (after the crop,
	// when one is taken).
	Size int `yaml:"size"`
	// Channels is the number of output channels, 1 or 3. Default: 1 for a
	// gray input image (image.Gray, image.Gray16), 3 otherwise. A gray image
	// becomes three equal channels; a colour image becomes one channel of
	// luma 0.299R + 0.587G + 0.114B.
	Channels int `yaml:"channels"`
	// Crop is the random resized crop.
	Crop CropConfig `yaml:"crop"`
	// FlipP is the probability of a horizontal flip. Default 0.5.
	FlipP *float64 `yaml:"flip_p"`
	// Rotation is a random rotation about the centre. Default: off.
	Rotation RotationConfig `yaml:"rotation"`
	// Jitter is the colour jitter. Default: brightness 0.4 and contrast 0.4,
	// always applied.
	Jitter JitterConfig `yaml:"jitter"`
	// GrayscaleP is the probability of turning a colour view gray (the
	// channel count is kept). Default 0.
	GrayscaleP float64 `yaml:"grayscale_p"`
	// Blur is a random Gaussian blur. Default: off.
	Blur BlurConfig `yaml:"blur"`
	// Solarize inverts the pixels at or above a threshold. Default: off.
	Solarize SolarizeConfig `yaml:"solarize"`
	// Mean is subtracted from every pixel after the augmentations: one value
	// for all channels or one per channel. Default [0.286], Fashion-MNIST's
	// (the reference's).
	Mean []float64 `yaml:"mean"`
	// Std divides every pixel after Mean is subtracted: one value for all
	// channels or one per channel, each > 0. Default [0.353].
	Std []float64 `yaml:"std"`
	// Workers is the number of goroutines of the augmentation stage, at
	// most MaxWorkers. Default runtime.GOMAXPROCS(0) at New (at most
	// MaxWorkers).
	Workers int `yaml:"workers"`
	// MaxPixels is the largest image (width × height) that is decoded;
	// a larger one is skipped. It also sets the byte limit of decoding,
	// sources.DecodedBytesPerPixel (4) bytes a pixel of it: an image whose
	// decoding would allocate more (a 16-bit PNG takes 8 bytes a pixel, a
	// progressive JPEG up to 24) is skipped too, from its header. At most
	// MaxMaxPixels. Default sources.DefaultMaxPixels.
	MaxPixels int `yaml:"max_pixels"`
}

// CropConfig is torchvision's RandomResizedCrop: a box of area
// U(Scale[0], Scale[1]) × the image's area and aspect ratio (width/height)
// log-uniform in Ratio, at most 10 tries, else a centre crop clamped to
// Ratio; then a bilinear resize to Size×Size (antialiased when shrinking).
type CropConfig struct {
	// Scale is the range of the crop's area as a fraction of the image's,
	// 0 < Scale[0] ≤ Scale[1] ≤ 1. Default [0.3, 1].
	Scale [2]float64 `yaml:"scale"`
	// Ratio is the range of the crop's aspect ratio (width / height),
	// 0 < Ratio[0] ≤ Ratio[1], sampled log-uniformly. Default [3/4, 4/3].
	Ratio [2]float64 `yaml:"ratio"`
	// P is the probability of cropping; otherwise the whole image is
	// resized. Default 1.
	P *float64 `yaml:"p"`
}

// RotationConfig is a random rotation about the image centre by an angle
// U(Degrees[0], Degrees[1]), counter-clockwise for positive angles, with
// bilinear sampling and zero (black, before normalisation) fill, keeping
// the size, as torchvision's RandomRotation(expand=False) does.
type RotationConfig struct {
	// Degrees is the range of the angle. Default [0, 0]: off.
	Degrees [2]float64 `yaml:"degrees"`
	// P is the probability of rotating. Default 1.
	P *float64 `yaml:"p"`
}

// JitterConfig is torchvision's ColorJitter: brightness, contrast and
// saturation factors U(max(0, 1−s), 1+s) and a hue shift U(−Hue, Hue), in
// that fixed order (torchvision shuffles it). As in torch_reference.py,
// contrast blends towards the mean (of the luma) of the brightness-adjusted
// image and the result is clipped to [0, 1] once after both; saturation and
// hue act on colour views only and clip after each.
type JitterConfig struct {
	// Brightness is the brightness strength, ≥ 0. Default 0.4.
	Brightness *float64 `yaml:"brightness"`
	// Contrast is the contrast strength, ≥ 0. Default 0.4.
	Contrast *float64 `yaml:"contrast"`
	// Saturation is the saturation strength, ≥ 0. Default 0.
	Saturation float64 `yaml:"saturation"`
	// Hue is the hue strength, 0 ≤ Hue ≤ 0.5. Default 0.
	Hue float64 `yaml:"hue"`
	// P is the probability of jittering. Default 1.
	P *float64 `yaml:"p"`
}

// BlurConfig is a Gaussian blur of standard deviation U(Sigma[0],
// Sigma[1]) pixels, radius ⌈3σ⌉, reflecting at the borders. The radius is
// capped at the view's side − 1 (torch's reflect padding cannot pad more
// than that either), so a large σ on a small view costs no more than a
// kernel as wide as the view.
type BlurConfig struct {
	// P is the probability of blurring. Default 0.
	P float64 `yaml:"p"`
	// Sigma is the range of the standard deviation in pixels,
	// 0 < Sigma[0] ≤ Sigma[1] ≤ MaxSigma. Default [0.1, 2].
	Sigma [2]float64 `yaml:"sigma"`
}

// SolarizeConfig inverts (x → 1 − x) every value at or above Threshold, as
// torchvision's RandomSolarize does.
type SolarizeConfig struct {
	// P is the probability of solarizing. Default 0.
	P float64 `yaml:"p"`
	// Threshold is in [0, 1]. Default 0.5.
	Threshold *float64 `yaml:"threshold"`
}

// Float returns a pointer to v, for the pointer fields of Config.
func Float(v float64) *float64 { return &v }

// DefaultMean and DefaultStd are the normalisation of the reference recipe
// (Fashion-MNIST's pixel mean and standard deviation).
const (
	DefaultMean = 0.286
	DefaultStd  = 0.353
)

// The bounds Validate enforces.
const (
	// MaxSize is the largest view side: a 4096×4096 view of 3 channels is
	// 192 MiB of float32, a pair 384 MiB. It bounds Config.Size and, with
	// the default Size, the shorter side of an input image.
	MaxSize = 4096
	// MaxSigma is the largest blur standard deviation, in pixels: a kernel
	// of 2⌈3·64⌉+1 = 385 taps.
	MaxSigma = 64
	// MaxWorkers is the largest worker count of the stage.
	MaxWorkers = 1024
	// MaxMaxPixels is the largest Config.MaxPixels: 16384×16384 pixels,
	// which as float32 planes of 3 channels are 3 GiB per worker.
	MaxMaxPixels = 1 << 28
)

// params is a Config with its defaults filled in.
type params struct {
	size, channels                   int
	cropP                            float64
	scale, ratio                     [2]float64
	flipP                            float64
	rotP                             float64
	degrees                          [2]float64
	jitterP                          float64
	brightness, contrast, sat, hue   float64
	grayP                            float64
	blurP                            float64
	sigma                            [2]float64
	solP, solThreshold               float64
	mean, std                        []float64
	workers, maxPixels               int
	rotOn, jitterOn, blurOn, solarOn bool
}

// effectiveMaxPixels is the pixel limit of decoding: maxPixels, or
// sources.DefaultMaxPixels when it is 0.
func (p *params) effectiveMaxPixels() int {
	if p.maxPixels == 0 {
		return sources.DefaultMaxPixels
	}
	return p.maxPixels
}

func orDefault(p *float64, def float64) float64 {
	if p == nil {
		return def
	}
	return *p
}

func (c Config) params() params {
	p := params{
		size:       c.Size,
		channels:   c.Channels,
		cropP:      orDefault(c.Crop.P, 1),
		scale:      c.Crop.Scale,
		ratio:      c.Crop.Ratio,
		flipP:      orDefault(c.FlipP, 0.5),
		rotP:       orDefault(c.Rotation.P, 1),
		degrees:    c.Rotation.Degrees,
		jitterP:    orDefault(c.Jitter.P, 1),
		brightness: orDefault(c.Jitter.Brightness, 0.4),
		contrast:   orDefault(c.Jitter.Contrast, 0.4),
		sat:        c.Jitter.Saturation,
		hue:        c.Jitter.Hue,
		grayP:      c.GrayscaleP,
		blurP:      c.Blur.P,
		sigma:      c.Blur.Sigma,
		solP:       c.Solarize.P,
		// solThreshold below
		mean:      c.Mean,
		std:       c.Std,
		workers:   c.Workers,
		maxPixels: c.MaxPixels,
	}
	if p.scale == [2]float64{} {
		p.scale = [2]float64{0.3, 1}
	}
	if p.ratio == [2]float64{} {
		p.ratio = [2]float64{3.0 / 4, 4.0 / 3}
	}
	if p.sigma == [2]float64{} {
		p.sigma = [2]float64{0.1, 2}
	}
	p.solThreshold = orDefault(c.Solarize.Threshold, 0.5)
	if p.mean == nil {
		p.mean = []float64{DefaultMean}
	}
	if p.std == nil {
		p.std = []float64{DefaultStd}
	}
	if p.workers == 0 {
		p.workers = min(runtime.GOMAXPROCS(0), MaxWorkers)
	}
	p.rotOn = p.rotP > 0 && p.degrees != [2]float64{}
	p.jitterOn = p.jitterP > 0 && (p.brightness > 0 || p.contrast > 0 || p.sat > 0 || p.hue > 0)
	p.blurOn = p.blurP > 0
	p.solarOn = p.solP > 0
	return p
}

// Validate reports the first impossible value as a *pipeline.FieldError
// that names the field as the flow's YAML spells it ("crop.scale"). The
// zero Config is valid.
func (c Config) Validate() error {
	p := c.params()
	bad := func(field, format string, args ...any) error {
		return &pipeline.FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	finite := func(vs ...float64) bool {
		for _, v := range vs {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return false
			}
		}
		return true
	}
	prob := func(field string, v float64) error {
		if !(v >= 0 && v <= 1) {
			return bad(field, "a probability must be in [0, 1], got %v", v)
		}
		return nil
	}
	if p.size < 0 || p.size > MaxSize {
		return bad("size", "must be in [0, %d] (0: the input's shorter side), got %d", MaxSize, p.size)
	}
	if p.maxPixels < 0 || p.maxPixels > MaxMaxPixels {
		return bad("max_pixels", "must be in [0, %d] (0: the default, %d), got %d", MaxMaxPixels, sources.DefaultMaxPixels, p.maxPixels)
	}
	if maxPx := p.effectiveMaxPixels(); int64(p.size)*int64(p.size) > int64(maxPx) {
		return bad("size", "a %d×%d view has more pixels than max_pixels (%d) allows an image", p.size, p.size, maxPx)
	}
	if p.channels != 0 && p.channels != 1 && p.channels != 3 {
		return bad("channels", "must be 1 or 3 (0: from the input), got %d", p.channels)
	}
	if !finite(p.scale[:]...) || !(p.scale[0] > 0 && p.scale[0] <= p.scale[1] && p.scale[1] <= 1) {
		return bad("crop.scale", "want 0 < scale[0] ≤ scale[1] ≤ 1, got %v", p.scale)
	}
	if !finite(p.ratio[:]...) || !(p.ratio[0] > 0 && p.ratio[0] <= p.ratio[1]) {
		return bad("crop.ratio", "want 0 < ratio[0] ≤ ratio[1], got %v", p.ratio)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"crop.p", p.cropP}, {"flip_p", p.flipP}, {"rotation.p", p.rotP}, {"jitter.p", p.jitterP},
		{"grayscale_p", p.grayP}, {"blur.p", p.blurP}, {"solarize.p", p.solP},
	} {
		if err := prob(f.name, f.v); err != nil {
			return err
		}
	}
	if !finite(p.degrees[:]...) || p.degrees[0] > p.degrees[1] {
		return bad("rotation.degrees", "want finite degrees[0] ≤ degrees[1], got %v", p.degrees)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"jitter.brightness", p.brightness}, {"jitter.contrast", p.contrast}, {"jitter.saturation", p.sat}} {
		if !(f.v >= 0) || math.IsInf(f.v, 0) {
			return bad(f.name, "must be a finite value ≥ 0, got %v", f.v)
		}
	}
	if !(p.hue >= 0 && p.hue <= 0.5) {
		return bad("jitter.hue", "must be in [0, 0.5], got %v", p.hue)
	}
	if !finite(p.sigma[:]...) || !(p.sigma[0] > 0 && p.sigma[0] <= p.sigma[1] && p.sigma[1] <= MaxSigma) {
		return bad("blur.sigma", "want 0 < sigma[0] ≤ sigma[1] ≤ %d, got %v", MaxSigma, p.sigma)
	}
	if !(p.solThreshold >= 0 && p.solThreshold <= 1) {
		return bad("solarize.threshold", "must be in [0, 1], got %v", p.solThreshold)
	}
	for _, f := range []struct {
		name string
		vs   []float64
	}{{"mean", p.mean}, {"std", p.std}} {
		n := len(f.vs)
		if n == 0 || n == 2 || n > 3 || (p.channels == 1 && n != 1) {
			return bad(f.name, "want one value or one per channel, got %d values", n)
		}
		if !finite(f.vs...) {
			return bad(f.name, "values must be finite, got %v", f.vs)
		}
	}
	for _, s := range p.std {
		if !(s > 0) {
			return bad("std", "values must be > 0, got %v", p.std)
		}
	}
	if p.workers < 0 || p.workers > MaxWorkers {
		return bad("workers", "must be in [0, %d] (0: GOMAXPROCS), got %d", MaxWorkers, p.workers)
	}
	return nil
}
