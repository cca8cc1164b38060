package augment

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/contrastream/contrastream/pipeline"
	"gopkg.in/yaml.v3"
)

// gradient is a w×h gray image whose value rises left to right and top to
// bottom, with a white top-left corner.
func gradient(w, h int) *image.Gray {
	img := image.NewGray(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetGray(x, y, color.Gray{uint8(20 + 30*x + 10*y)})
		}
	}
	img.SetGray(0, 0, color.Gray{255})
	return img
}

// colorful is a w×h RGB image with distinct channels.
func colorful(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetRGBA(x, y, color.RGBA{uint8(10 + 40*x), uint8(200 - 30*y), uint8(60 + 13*(x+y)), 255})
		}
	}
	return img
}

// constant is a w×h gray image of value v.
func constant(w, h int, v uint8) *image.Gray {
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = v
	}
	return img
}

func fashion(t testing.TB, i int) image.Image {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "fmnist-"+string(rune('0'+i))+".png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// plain turns every transform off and normalisation into the identity;
// tests switch on the one they check.
func plain() Config {
	return Config{
		Crop:   CropConfig{P: Float(0)},
		FlipP:  Float(0),
		Jitter: JitterConfig{P: Float(0)},
		Mean:   []float64{0},
		Std:    []float64{1},
	}
}

func mustNew(t testing.TB, cfg Config) *Augmenter {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func view(t testing.TB, cfg Config, img image.Image) pipeline.View {
	t.Helper()
	var v pipeline.View
	if err := mustNew(t, cfg).View(img, 1, 0, 7, 0, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func near(a, b, tol float32) bool { return math.Abs(float64(a-b)) <= float64(tol) }

func TestPlainIsPixels(t *testing.T) {
	img := gradient(6, 6)
	v := view(t, plain(), img)
	if v.C != 1 || v.H != 6 || v.W != 6 {
		t.Fatalf("shape %d×%d×%d, want 1×6×6", v.C, v.H, v.W)
	}
	for y := range 6 {
		for x := range 6 {
			want := float32(img.GrayAt(x, y).Y) / 255
			if got := v.Data[y*6+x]; got != want {
				t.Fatalf("(%d,%d) = %v, want %v", x, y, got, want)
			}
		}
	}
}

func TestFlip(t *testing.T) {
	for _, img := range []image.Image{gradient(6, 4), colorful(5, 5)} {
		cfg := plain()
		cfg.Size = 7
		base := view(t, cfg, img)
		cfg.FlipP = Float(1)
		flipped := view(t, cfg, img)
		for c := range base.C {
			for y := range base.H {
				for x := range base.W {
					i := (c*base.H+y)*base.W + x
					j := (c*base.H+y)*base.W + base.W - 1 - x
					if flipped.Data[i] != base.Data[j] {
						t.Fatalf("%T c%d (%d,%d): flipped %v, mirror %v", img, c, x, y, flipped.Data[i], base.Data[j])
					}
				}
			}
		}
	}
}

// bilinear is a naive reference: pixel centres, align_corners = false,
// edges clamped (enlarging only).
func bilinear(img *image.Gray, size int) []float32 {
	w, h := img.Bounds().Dx(), img.Bounds().Dy()
	at := func(x, y int) float64 {
		x = max(0, min(x, w-1))
		y = max(0, min(y, h-1))
		return float64(img.GrayAt(x, y).Y) / 255
	}
	out := make([]float32, size*size)
	for oy := range size {
		for ox := range size {
			sx := (float64(ox)+0.5)*float64(w)/float64(size) - 0.5
			sy := (float64(oy)+0.5)*float64(h)/float64(size) - 0.5
			x0, y0 := math.Floor(sx), math.Floor(sy)
			fx, fy := sx-x0, sy-y0
			xi, yi := int(x0), int(y0)
			out[oy*size+ox] = float32((1-fx)*(1-fy)*at(xi, yi) + fx*(1-fy)*at(xi+1, yi) +
				(1-fx)*fy*at(xi, yi+1) + fx*fy*at(xi+1, yi+1))
		}
	}
	return out
}

func TestResizeMatchesBilinear(t *testing.T) {
	img := gradient(6, 4)
	cfg := plain()
	cfg.Size = 9
	v := view(t, cfg, img)
	want := bilinear(img, 9)
	for i := range want {
		if !near(v.Data[i], want[i], 1e-6) {
			t.Fatalf("pixel %d = %v, want %v", i, v.Data[i], want[i])
		}
	}
}

func TestResizeShrinkAntialiased(t *testing.T) {
	// Shrinking 8→4 widens the triangle filter to 4 taps (1/8, 3/8, 3/8,
	// 1/8): a linear ramp keeps its value at the output pixel centres.
	img := image.NewGray(image.Rect(0, 0, 8, 8))
	for y := range 8 {
		for x := range 8 {
			img.SetGray(x, y, color.Gray{uint8(10 * x)})
		}
	}
	cfg := plain()
	cfg.Size = 4
	v := view(t, cfg, img)
	for o := 1; o < 3; o++ {
		want := float32(10*(2*o)+5) / 255 // ramp at the centre 2o+1 of output o
		if got := v.Data[2*4+o]; !near(got, want, 1e-6) {
			t.Errorf("output %d = %v, want %v", o, got, want)
		}
	}
	// Renormalised at the edge: taps 0, 1, 2 with weights 3/7, 3/7, 1/7.
	if got, want := v.Data[2*4], float32((3*0+3*10+1*20)/7.0)/255; !near(got, want, 1e-6) {
		t.Errorf("edge output = %v, want %v", got, want)
	}
}

func TestFullCropEqualsResize(t *testing.T) {
	img := fashion(t, 0)
	cfg := plain()
	cfg.Size = 20
	want := view(t, cfg, img)
	cfg.Crop = CropConfig{Scale: [2]float64{1, 1}, Ratio: [2]float64{1, 1}}
	got := view(t, cfg, img)
	for i := range want.Data {
		if got.Data[i] != want.Data[i] {
			t.Fatalf("pixel %d: crop %v, resize %v", i, got.Data[i], want.Data[i])
		}
	}
}

// boxFits reports whether box b of a W×H image can be the rounding (half
// a pixel at most on each side) of a box whose area fraction is in scale
// and whose log aspect ratio is in [log ratio[0], log ratio[1]].
func boxFits(b cropBox, W, H int, scale, ratio [2]float64) error {
	w, h, area := float64(b.w), float64(b.h), float64(W*H)
	const eps = 1e-9
	if lo, hi := (w-0.5)*(h-0.5)/area, (w+0.5)*(h+0.5)/area; lo > scale[1]+eps || hi < scale[0]-eps {
		return fmt.Errorf("box %+v: area fraction %.3f (rounding: %.3f–%.3f) outside scale %v", b, w*h/area, lo, hi, scale)
	}
	lo, hi := math.Log((w-0.5)/(h+0.5)), math.Log((w+0.5)/(h-0.5))
	if lo > math.Log(ratio[1])+eps || hi < math.Log(ratio[0])-eps {
		return fmt.Errorf("box %+v: log aspect %.3f (rounding: %.3f–%.3f) outside log ratio [%.3f, %.3f]",
			b, math.Log(w/h), lo, hi, math.Log(ratio[0]), math.Log(ratio[1]))
	}
	return nil
}

func TestCropBox(t *testing.T) {
	// boxFits itself rejects a box too large for scale and one too wide
	// for ratio.
	if boxFits(cropBox{0, 0, 28, 28}, 28, 28, [2]float64{0.3, 0.5}, [2]float64{0.75, 4.0 / 3}) == nil ||
		boxFits(cropBox{0, 0, 28, 14}, 28, 28, [2]float64{0.3, 1}, [2]float64{0.75, 4.0 / 3}) == nil {
		t.Fatal("boxFits accepts boxes outside scale or ratio")
	}
	for _, tc := range []struct {
		name         string
		w, h         int
		scale, ratio [2]float64
		// minSampled is the fewest of 500 boxes that must be drawn
		// rather than the fallback.
		minSampled int
	}{
		{"fmnist", 28, 28, [2]float64{0.3, 1}, [2]float64{3.0 / 4, 4.0 / 3}, 450},
		{"wide", 60, 20, [2]float64{0.08, 1}, [2]float64{3.0 / 4, 4.0 / 3}, 400},
		{"tall ratio", 40, 30, [2]float64{0.1, 0.5}, [2]float64{0.3, 0.5}, 450},
		{"fallback", 6, 4, [2]float64{1, 1}, [2]float64{1, 1}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fb := fallbackCrop(tc.w, tc.h, tc.ratio)
			sampled := 0
			for i := range 500 {
				r := newRNG(uint64(i), streamCrop)
				b := sampleCrop(&r, tc.w, tc.h, tc.scale, tc.ratio)
				if b.w < 1 || b.h < 1 || b.x < 0 || b.y < 0 || b.x+b.w > tc.w || b.y+b.h > tc.h {
					t.Fatalf("box %+v outside %d×%d", b, tc.w, tc.h)
				}
				if tc.name == "fallback" && b != (cropBox{1, 0, 4, 4}) {
					t.Fatalf("fallback box %+v, want the centre 4×4", b)
				}
				if b == fb {
					// The documented fallback: a centre crop whose area
					// need not be in scale.
					continue
				}
				sampled++
				if err := boxFits(b, tc.w, tc.h, tc.scale, tc.ratio); err != nil {
					t.Fatal(err)
				}
			}
			if sampled < tc.minSampled {
				t.Fatalf("%d of 500 boxes drawn, the rest the fallback; want at least %d drawn", sampled, tc.minSampled)
			}
		})
	}
}

func TestGrayscale(t *testing.T) {
	cfg := plain()
	cfg.GrayscaleP = 1
	v := view(t, cfg, colorful(5, 4))
	n := v.H * v.W
	if v.C != 3 {
		t.Fatalf("C = %d, want 3", v.C)
	}
	base := view(t, plain(), colorful(5, 4))
	for i := range n {
		if v.Data[i] != v.Data[n+i] || v.Data[i] != v.Data[2*n+i] {
			t.Fatalf("pixel %d: channels %v %v %v differ", i, v.Data[i], v.Data[n+i], v.Data[2*n+i])
		}
		l := lumaR*base.Data[i] + lumaG*base.Data[n+i] + lumaB*base.Data[2*n+i]
		if !near(v.Data[i], l, 1e-6) {
			t.Fatalf("pixel %d = %v, want luma %v", i, v.Data[i], l)
		}
	}
}

func TestChannels(t *testing.T) {
	cfg := plain()
	cfg.Channels = 3
	v := view(t, cfg, gradient(4, 4))
	n := 16
	if v.C != 3 || v.Data[0] != v.Data[n] || v.Data[5] != v.Data[2*n+5] {
		t.Fatalf("gray as 3 channels: C=%d, %v", v.C, v.Data)
	}
	cfg.Channels = 1
	rgb := colorful(4, 4)
	v = view(t, cfg, rgb)
	r, g, b, _ := rgb.At(2, 1).RGBA()
	want := float32(lumaR*float64(r>>8)+lumaG*float64(g>>8)+lumaB*float64(b>>8)) / 255
	if v.C != 1 || !near(v.Data[1*4+2], want, 1e-6) {
		t.Fatalf("colour as 1 channel: C=%d, got %v, want %v", v.C, v.Data[6], want)
	}
}

func TestBrightnessMultiplies(t *testing.T) {
	img := fashion(t, 1)
	base := view(t, plain(), img)
	cfg := plain()
	cfg.Jitter = JitterConfig{Brightness: Float(0.5), Contrast: Float(0)}
	v := view(t, cfg, img)
	var factor float32
	for i, x := range base.Data {
		if x < 0.3 || v.Data[i] >= 1 {
			continue // dark pixels are imprecise ratios; bright ones clip
		}
		f := v.Data[i] / x
		if factor == 0 {
			factor = f
		}
		if !near(f, factor, 1e-5) {
			t.Fatalf("pixel %d: ratio %v, others %v", i, f, factor)
		}
	}
	if factor < 0.5 || factor > 1.5 || factor == 1 {
		t.Fatalf("factor %v outside U(0.5, 1.5)", factor)
	}
	d := []float32{0.1, 0.5, 0.9}
	mul, add := brightnessContrast(d, 1, 3, 1.5, 1)
	applyAffine(d, mul, add)
	if want := []float32{0.15, 0.75, 1}; !near(d[0], want[0], 1e-7) || !near(d[1], want[1], 1e-7) || d[2] != 1 {
		t.Fatalf("brightness 1.5: %v, want %v", d, want)
	}
}

func TestContrastKeepsMean(t *testing.T) {
	img := image.NewGray(image.Rect(0, 0, 8, 8))
	for i := range img.Pix {
		img.Pix[i] = uint8(90 + (i*37)%80) // in [0.35, 0.67]: never clips
	}
	mean := func(d []float32) (m, v float64) {
		for _, x := range d {
			m += float64(x)
		}
		m /= float64(len(d))
		for _, x := range d {
			v += (float64(x) - m) * (float64(x) - m)
		}
		return m, v / float64(len(d))
	}
	m0, v0 := mean(view(t, plain(), img).Data)
	cfg := plain()
	cfg.Jitter = JitterConfig{Brightness: Float(0), Contrast: Float(0.9)}
	m1, v1 := mean(view(t, cfg, img).Data)
	if math.Abs(m1-m0) > 1e-6 {
		t.Fatalf("mean %v, want %v", m1, m0)
	}
	if math.Abs(v1-v0) < 1e-6 {
		t.Fatalf("variance unchanged (%v): no contrast applied", v1)
	}
}

func TestReferenceJitter(t *testing.T) {
	// ((v·b − m·b)·c + m·b).clamp(0, 1), m the mean of v.
	v := []float32{0.1, 0.4, 0.7, 1.0}
	b, c := 1.3, 0.7
	m := (0.1 + 0.4 + 0.7 + 1.0) / 4
	d := append([]float32(nil), v...)
	mul, add := brightnessContrast(d, 1, 4, b, c)
	applyAffine(d, mul, add)
	for i, x := range v {
		want := float32(math.Max(0, math.Min(1, (float64(x)*b-m*b)*c+m*b)))
		if !near(d[i], want, 1e-6) {
			t.Fatalf("value %d = %v, want %v", i, d[i], want)
		}
	}
}

func TestSaturationHue(t *testing.T) {
	img := colorful(5, 5)
	base := view(t, plain(), img)
	cfg := plain()
	cfg.Jitter = JitterConfig{Brightness: Float(0), Contrast: Float(0), Saturation: 0.8, Hue: 0.3}
	v := view(t, cfg, img)
	same := true
	for i := range v.Data {
		if v.Data[i] < 0 || v.Data[i] > 1 {
			t.Fatalf("value %v outside [0, 1]", v.Data[i])
		}
		same = same && v.Data[i] == base.Data[i]
	}
	if same {
		t.Fatal("saturation and hue changed nothing")
	}
	// HSV round trip and a known hue shift: red shifted by 1/3 is green.
	for _, c := range [][3]float32{{1, 0, 0}, {0.2, 0.5, 0.9}, {0.3, 0.3, 0.3}, {0.9, 0.8, 0.1}} {
		h, s, val := rgbToHSV(c[0], c[1], c[2])
		r, g, b := hsvToRGB(h, s, val)
		if !near(r, c[0], 1e-6) || !near(g, c[1], 1e-6) || !near(b, c[2], 1e-6) {
			t.Fatalf("HSV round trip of %v gives %v %v %v", c, r, g, b)
		}
	}
	d := []float32{1, 0, 0}
	shiftHue(d, 1, 1.0/3)
	if !near(d[0], 0, 1e-6) || !near(d[1], 1, 1e-6) || !near(d[2], 0, 1e-6) {
		t.Fatalf("red + 1/3 = %v, want green", d)
	}
}

func TestSolarize(t *testing.T) {
	img := fashion(t, 2)
	base := view(t, plain(), img)
	cfg := plain()
	cfg.Solarize = SolarizeConfig{P: 1, Threshold: Float(0.5)}
	v := view(t, cfg, img)
	for i, x := range base.Data {
		want := x
		if x >= 0.5 {
			want = 1 - x
		}
		if v.Data[i] != want {
			t.Fatalf("pixel %d: %v → %v, want %v", i, x, v.Data[i], want)
		}
	}
}

func TestBlur(t *testing.T) {
	cfg := plain()
	cfg.Blur = BlurConfig{P: 1, Sigma: [2]float64{1.5, 1.5}}
	v := view(t, cfg, constant(9, 9, 128))
	for i, x := range v.Data {
		if !near(x, 128.0/255, 1e-6) {
			t.Fatalf("constant image blurred: pixel %d = %v", i, x)
		}
	}
	edge := image.NewGray(image.Rect(0, 0, 10, 10))
	for y := range 10 {
		for x := 5; x < 10; x++ {
			edge.SetGray(x, y, color.Gray{255})
		}
	}
	v = view(t, cfg, edge)
	row := v.Data[4*10 : 5*10]
	for x := 1; x < 10; x++ {
		if row[x] < row[x-1] {
			t.Fatalf("blurred edge not monotone: %v", row)
		}
	}
	if !(row[4] > 0.05 && row[4] < 0.5 && row[5] > 0.5 && row[5] < 0.95) {
		t.Fatalf("edge not smoothed: %v", row)
	}
	if !near(row[4]+row[5], 1, 1e-5) {
		t.Fatalf("edge not symmetric: %v", row)
	}
}

func TestRotation(t *testing.T) {
	img := gradient(5, 5)
	base := view(t, plain(), img)
	d := make([]float32, len(base.Data))
	rotate(base.Data, d, 1, 5, 0)
	for i := range d {
		if d[i] != base.Data[i] {
			t.Fatalf("rotation by 0 changed pixel %d: %v → %v", i, base.Data[i], d[i])
		}
	}
	cfg := plain()
	cfg.Rotation = RotationConfig{Degrees: [2]float64{90, 90}, P: Float(1)}
	v := view(t, cfg, img)
	// Counter-clockwise: out[y][x] = in[x][n−1−y]; the top-left corner
	// moves to the bottom-left.
	for y := range 5 {
		for x := range 5 {
			if got, want := v.Data[y*5+x], base.Data[x*5+4-y]; !near(got, want, 1e-6) {
				t.Fatalf("(%d,%d) = %v, want %v", x, y, got, want)
			}
		}
	}
	if v.Data[4*5] != 1 {
		t.Fatalf("white corner not at the bottom left: %v", v.Data)
	}
}

func TestNormalize(t *testing.T) {
	img := colorful(4, 4)
	base := view(t, plain(), img)
	cfg := plain()
	cfg.Mean = []float64{0.4, 0.5, 0.6}
	cfg.Std = []float64{0.2, 0.25, 0.3}
	v := view(t, cfg, img)
	for c := range 3 {
		for i := range 16 {
			want := (base.Data[c*16+i] - float32(cfg.Mean[c])) / float32(cfg.Std[c])
			if !near(v.Data[c*16+i], want, 1e-6) {
				t.Fatalf("c%d pixel %d = %v, want %v", c, i, v.Data[c*16+i], want)
			}
		}
	}
	cfg.Mean, cfg.Std = nil, nil // the default: the reference's
	v = view(t, cfg, img)
	if want := (base.Data[3] - 0.286) / 0.353; !near(v.Data[3], want, 1e-6) {
		t.Fatalf("default normalisation: %v, want %v", v.Data[3], want)
	}
	// Three values cannot normalise a one-channel view.
	cfg.Mean, cfg.Std = []float64{0.4, 0.5, 0.6}, []float64{1}
	if err := mustNew(t, cfg).View(gradient(4, 4), 1, 0, 0, 0, &v); err == nil || !strings.Contains(err.Error(), "mean") {
		t.Fatalf("3 means for a gray view: err = %v", err)
	}
}

func TestDeterminism(t *testing.T) {
	cfg := Config{
		Rotation:   RotationConfig{Degrees: [2]float64{-20, 20}},
		Jitter:     JitterConfig{Saturation: 0.4, Hue: 0.1},
		GrayscaleP: 0.2,
		Blur:       BlurConfig{P: 0.5},
		Solarize:   SolarizeConfig{P: 0.2},
	}
	a := mustNew(t, cfg)
	img := colorful(12, 10)
	get := func(seed int64, epoch int, index int64, v int) []float32 {
		var out pipeline.View
		if err := a.View(img, seed, epoch, index, v, &out); err != nil {
			t.Fatal(err)
		}
		return out.Data
	}
	equal := func(x, y []float32) bool {
		if len(x) != len(y) {
			return false
		}
		for i := range x {
			if math.Float32bits(x[i]) != math.Float32bits(y[i]) {
				return false
			}
		}
		return true
	}
	ref := get(3, 1, 42, 0)
	if !equal(ref, get(3, 1, 42, 0)) {
		t.Fatal("same (seed, epoch, index, view) gave different floats")
	}
	for name, other := range map[string][]float32{
		"view": get(3, 1, 42, 1), "index": get(3, 1, 43, 0), "epoch": get(3, 2, 42, 0), "seed": get(4, 1, 42, 0),
	} {
		if equal(ref, other) {
			t.Errorf("a different %s gave the same view", name)
		}
	}
	// Pair makes the same views as View.
	p, err := a.Pair(pipeline.Sample{Index: 42, Epoch: 1, Image: img}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !equal(p.Views[0].Data, ref) || !equal(p.Views[1].Data, get(3, 1, 42, 1)) {
		t.Fatal("Pair's views differ from View's")
	}
	// dst.Data is reused when large enough.
	dst := pipeline.View{Data: make([]float32, 0, 1000)}
	if err := a.View(img, 3, 1, 42, 0, &dst); err != nil {
		t.Fatal(err)
	}
	if cap(dst.Data) != 1000 || !equal(dst.Data, ref) {
		t.Fatal("dst.Data not reused, or a different result")
	}
}

func TestPairSkips(t *testing.T) {
	a := mustNew(t, Config{MaxPixels: 100})
	for name, s := range map[string]pipeline.Sample{
		"empty":     {Origin: "empty", Image: image.NewGray(image.Rect(0, 0, 0, 5))},
		"too large": {Origin: "too large", Image: gradient(11, 10)},
		"not image": {Origin: "not image", Encoded: []byte("hello")},
	} {
		_, err := a.Pair(s, 1)
		var se *pipeline.SkipError
		if !errors.As(err, &se) || se.Origin != name {
			t.Errorf("%s: err = %v, want a SkipError naming %q", name, err, name)
		}
	}
	p, err := a.Pair(pipeline.Sample{Index: 5, Label: 3, Epoch: 2, Image: gradient(10, 10)}, 1)
	if err != nil || p.Index != 5 || p.Label != 3 || p.Epoch != 2 || p.Views[0].C != 1 || p.Views[1].H != 10 {
		t.Fatalf("pair %+v, %v", p, err)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		field string
		cfg   Config
	}{
		{"size", Config{Size: -1}},
		{"channels", Config{Channels: 2}},
		{"crop.scale", Config{Crop: CropConfig{Scale: [2]float64{0.5, 0.2}}}},
		{"crop.scale", Config{Crop: CropConfig{Scale: [2]float64{0.5, 1.5}}}},
		{"crop.ratio", Config{Crop: CropConfig{Ratio: [2]float64{0, 1}}}},
		{"crop.p", Config{Crop: CropConfig{P: Float(1.1)}}},
		{"flip_p", Config{FlipP: Float(-0.1)}},
		{"flip_p", Config{FlipP: Float(math.NaN())}},
		{"rotation.degrees", Config{Rotation: RotationConfig{Degrees: [2]float64{10, -10}}}},
		{"rotation.p", Config{Rotation: RotationConfig{P: Float(2)}}},
		{"jitter.brightness", Config{Jitter: JitterConfig{Brightness: Float(-1)}}},
		{"jitter.contrast", Config{Jitter: JitterConfig{Contrast: Float(math.Inf(1))}}},
		{"jitter.saturation", Config{Jitter: JitterConfig{Saturation: -0.2}}},
		{"jitter.hue", Config{Jitter: JitterConfig{Hue: 0.6}}},
		{"jitter.p", Config{Jitter: JitterConfig{P: Float(3)}}},
		{"grayscale_p", Config{GrayscaleP: 1.5}},
		{"blur.p", Config{Blur: BlurConfig{P: -1}}},
		{"blur.sigma", Config{Blur: BlurConfig{Sigma: [2]float64{0, 1}}}},
		{"solarize.p", Config{Solarize: SolarizeConfig{P: 7}}},
		{"solarize.threshold", Config{Solarize: SolarizeConfig{Threshold: Float(1.5)}}},
		{"mean", Config{Mean: []float64{0.1, 0.2}}},
		{"mean", Config{Channels: 1, Mean: []float64{0.1, 0.2, 0.3}}},
		{"std", Config{Std: []float64{0}}},
		{"std", Config{Std: []float64{}}},
		{"workers", Config{Workers: -2}},
		{"max_pixels", Config{MaxPixels: -1}},
		// Bounds on what a value may cost.
		{"size", Config{Size: MaxSize + 1}},
		{"size", Config{Size: 50000}},
		{"size", Config{Size: 101, MaxPixels: 100 * 100}},
		{"blur.sigma", Config{Blur: BlurConfig{Sigma: [2]float64{1, MaxSigma + 1}}}},
		{"blur.sigma", Config{Blur: BlurConfig{Sigma: [2]float64{1e6, 1e6}}}},
		{"workers", Config{Workers: MaxWorkers + 1}},
		{"max_pixels", Config{MaxPixels: MaxMaxPixels + 1}},
	} {
		t.Run(tc.field, func(t *testing.T) {
			err := tc.cfg.Validate()
			var fe *pipeline.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || !strings.HasPrefix(err.Error(), tc.field+": ") {
				t.Fatalf("err = %v, want a FieldError naming %s", err, tc.field)
			}
			if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("New: err = %v, want one naming %s", err, tc.field)
			}
		})
	}
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero Config: %v", err)
	}
	// Each bound itself is allowed.
	for _, cfg := range []Config{
		{Size: MaxSize},
		{Size: 100, MaxPixels: 100 * 100},
		{Blur: BlurConfig{Sigma: [2]float64{MaxSigma, MaxSigma}}},
		{Workers: MaxWorkers},
		{MaxPixels: MaxMaxPixels},
	} {
		if err := cfg.Validate(); err != nil {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
}

// TestDefaultSizeLimit: with the default Size, an image whose shorter side
// is over MaxSize is skipped (View: an error) before a pixel is read; with
// Size set, or a shorter side within MaxSize, it is not refused.
func TestDefaultSizeLimit(t *testing.T) {
	// No pixels behind the bounds: reading one would panic.
	huge := &image.Gray{Rect: image.Rect(0, 0, 6000, MaxSize+1)}
	a := mustNew(t, Config{})
	_, err := a.Pair(pipeline.Sample{Origin: "photo.jpg", Image: huge}, 1)
	var se *pipeline.SkipError
	if !errors.As(err, &se) || se.Origin != "photo.jpg" || !strings.Contains(err.Error(), "set size") ||
		!strings.Contains(err.Error(), "4097×4097") {
		t.Fatalf("err = %v, want a SkipError for photo.jpg saying to set size", err)
	}
	var v pipeline.View
	if err := a.View(huge, 1, 0, 0, 0, &v); err == nil || !strings.Contains(err.Error(), "set size") {
		t.Fatalf("View: err = %v, want one saying to set size", err)
	}
	if err := a.checkSize(image.Rect(0, 0, 9000, MaxSize)); err != nil {
		t.Fatalf("shorter side %d: %v", MaxSize, err)
	}
	if err := mustNew(t, Config{Size: 16}).checkSize(huge.Rect); err != nil {
		t.Fatalf("Size 16: %v", err)
	}
	// A long thin image is fine: its views are as small as its short side.
	p, err := a.Pair(pipeline.Sample{Image: gradient(MaxSize+50, 2)}, 1)
	if err != nil || p.Views[0].H != 2 {
		t.Fatalf("%d×2 image: %v, views %d×%d", MaxSize+50, err, p.Views[0].H, p.Views[0].W)
	}
}

// TestBlurRadiusCapped: a large σ on a small view uses a kernel no wider
// than the view, normalised, and gives a finite, nearly flat view.
func TestBlurRadiusCapped(t *testing.T) {
	k := gaussian(nil, MaxSigma, 9)
	var sum float64
	for _, w := range k {
		sum += float64(w)
	}
	if len(k) != 19 || math.Abs(sum-1) > 1e-5 {
		t.Fatalf("σ %d capped at radius 9: %d taps summing to %v, want 19 and 1", MaxSigma, len(k), sum)
	}
	if k := gaussian(nil, 1, 100); len(k) != 7 {
		t.Fatalf("σ 1: %d taps, want 7 (radius 3)", len(k))
	}
	if k := gaussian(nil, 1, 0); len(k) != 1 || k[0] != 1 {
		t.Fatalf("radius 0: %v, want [1]", k)
	}
	cfg := plain()
	cfg.Blur = BlurConfig{P: 1, Sigma: [2]float64{MaxSigma, MaxSigma}}
	v := view(t, cfg, fashion(t, 0))
	lo, hi := v.Data[0], v.Data[0]
	for _, x := range v.Data {
		lo, hi = min(lo, x), max(hi, x)
	}
	if math.IsNaN(float64(lo)) || hi-lo > 0.2 {
		t.Fatalf("σ %d on 28×28: values %v–%v, want nearly flat", MaxSigma, lo, hi)
	}
}

func TestNormalization(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cfg       Config
		mean, std []float64
	}{
		{"defaults", Config{}, []float64{DefaultMean}, []float64{DefaultStd}},
		{"one value", Config{Mean: []float64{0.5}, Std: []float64{0.25}}, []float64{0.5}, []float64{0.25}},
		{"per channel", Config{Mean: []float64{0.4, 0.5, 0.6}}, []float64{0.4, 0.5, 0.6}, []float64{DefaultStd}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := mustNew(t, tc.cfg)
			mean, std := a.Normalization()
			if !slices.Equal(mean, tc.mean) || !slices.Equal(std, tc.std) {
				t.Fatalf("Normalization() = %v, %v; want %v, %v", mean, std, tc.mean, tc.std)
			}
			// The slices are the caller's: changing them changes nothing.
			mean[0], std[0] = 99, 99
			if m, s := a.Normalization(); m[0] != tc.mean[0] || s[0] != tc.std[0] {
				t.Fatal("Normalization returned the Augmenter's own slices")
			}
			if tc.cfg.Mean != nil && tc.cfg.Mean[0] != tc.mean[0] {
				t.Fatal("Normalization returned the Config's slice")
			}
			// Nor does changing the Config's slices after New.
			if tc.cfg.Mean != nil {
				tc.cfg.Mean[0] = 42
				if m, _ := a.Normalization(); m[0] != tc.mean[0] {
					t.Fatal("the Augmenter shares the Config's Mean")
				}
			}
		})
	}
}

func TestDefaultsAreTheReference(t *testing.T) {
	p := Config{}.params()
	if p.scale != [2]float64{0.3, 1} || p.ratio != [2]float64{0.75, 4.0 / 3} || p.cropP != 1 ||
		p.flipP != 0.5 || p.brightness != 0.4 || p.contrast != 0.4 || p.jitterP != 1 ||
		p.sat != 0 || p.hue != 0 || p.grayP != 0 || p.blurOn || p.solarOn || p.rotOn ||
		p.mean[0] != 0.286 || p.std[0] != 0.353 {
		t.Fatalf("defaults %+v differ from torch_reference.py's recipe", p)
	}
}

func TestPairDecodes(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "fmnist-3.png"))
	if err != nil {
		t.Fatal(err)
	}
	a := mustNew(t, Config{})
	enc, err := a.Pair(pipeline.Sample{Index: 9, Encoded: raw, Origin: "fmnist-3.png"}, 5)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := a.Pair(pipeline.Sample{Index: 9, Image: fashion(t, 3)}, 5)
	if err != nil {
		t.Fatal(err)
	}
	for v := range 2 {
		if enc.Views[v].C != 1 || enc.Views[v].H != 28 || enc.Views[v].W != 28 {
			t.Fatalf("view %d shape %d×%d×%d, want 1×28×28", v, enc.Views[v].C, enc.Views[v].H, enc.Views[v].W)
		}
		for i := range enc.Views[v].Data {
			if enc.Views[v].Data[i] != dec.Views[v].Data[i] {
				t.Fatalf("view %d value %d: encoded %v, image %v", v, i, enc.Views[v].Data[i], dec.Views[v].Data[i])
			}
		}
	}
}

func TestConfigYAML(t *testing.T) {
	doc := `
size: 32
crop: {scale: [0.08, 1]}
flip_p: 0
jitter: {saturation: 0.4, hue: 0.1, p: 0.8}
grayscale_p: 0.2
mean: [0.5, 0.5, 0.5]
`
	var cfg Config
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	p := cfg.params()
	if p.size != 32 || p.scale != [2]float64{0.08, 1} || p.flipP != 0 || p.jitterP != 0.8 ||
		p.brightness != 0.4 || p.sat != 0.4 || p.grayP != 0.2 || len(p.mean) != 3 || p.std[0] != DefaultStd {
		t.Fatalf("decoded %+v", p)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}
