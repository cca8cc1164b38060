package augment

import (
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/contrastream/contrastream/pipeline"
)

// TestTransformsOnRealImage switches on one transform at a time on a real
// Fashion-MNIST image (testdata/fmnist-2.png, 28×28 gray) and checks the
// property that defines it, against the view with every transform off.
// The colour transforms are checked on a colour photo in
// TestColorOnRealPhoto.
func TestTransformsOnRealImage(t *testing.T) {
	img := fashion(t, 2)
	base := view(t, plain(), img)
	const n = 28
	at := func(d []float32, c, y, x int) float32 { return d[(c*n+y)*n+x] }
	stats := func(d []float32) (mean, tv float64) {
		for i, v := range d {
			mean += float64(v)
			if i%n > 0 {
				tv += math.Abs(float64(v - d[i-1]))
			}
		}
		return mean / float64(len(d)), tv
	}
	m0, tv0 := stats(base.Data)
	for _, tc := range []struct {
		name  string
		set   func(*Config)
		check func(t *testing.T, v []float32)
	}{
		{"flip mirrors", func(c *Config) { c.FlipP = Float(1) }, func(t *testing.T, v []float32) {
			for y := range n {
				for x := range n {
					if at(v, 0, y, x) != at(base.Data, 0, y, n-1-x) {
						t.Fatalf("(%d,%d) is not the mirror pixel", x, y)
					}
				}
			}
		}},
		{"full crop is the image", func(c *Config) { c.Crop = CropConfig{Scale: [2]float64{1, 1}, Ratio: [2]float64{1, 1}, P: Float(1)} },
			func(t *testing.T, v []float32) {
				for i := range v {
					if !near(v[i], base.Data[i], 1e-6) {
						t.Fatalf("pixel %d: %v, want %v", i, v[i], base.Data[i])
					}
				}
			}},
		{"rotation by 90 rotates", func(c *Config) { c.Rotation = RotationConfig{Degrees: [2]float64{90, 90}, P: Float(1)} },
			func(t *testing.T, v []float32) {
				for y := range n {
					for x := range n {
						if !near(at(v, 0, y, x), at(base.Data, 0, x, n-1-y), 1e-5) {
							t.Fatalf("(%d,%d) is not the rotated pixel", x, y)
						}
					}
				}
			}},
		{"brightness scales", func(c *Config) {
			c.Jitter = JitterConfig{Brightness: Float(0.4), Contrast: Float(0), P: Float(1)}
		}, func(t *testing.T, v []float32) {
			var f float32 = -1 // the one factor every unclipped pixel shares
			for i := range v {
				if base.Data[i] > 0.05 && v[i] < 1 {
					if r := v[i] / base.Data[i]; f < 0 {
						f = r
					} else if !near(r, f, 1e-4) {
						t.Fatalf("pixel %d scaled by %v, others by %v", i, r, f)
					}
				}
			}
			if f < 0.6 || f > 1.4 || f == 1 {
				t.Fatalf("brightness factor %v outside [0.6, 1.4] or 1", f)
			}
		}},
		{"contrast keeps the mean when nothing clips", func(c *Config) {
			c.Jitter = JitterConfig{Brightness: Float(0), Contrast: Float(0.1), P: Float(1)}
		}, func(t *testing.T, v []float32) {
			if m, _ := stats(v); math.Abs(m-m0) > 0.02 {
				t.Fatalf("mean %v, want about %v", m, m0)
			}
		}},
		{"blur smooths", func(c *Config) { c.Blur = BlurConfig{P: 1, Sigma: [2]float64{1, 1}} }, func(t *testing.T, v []float32) {
			if _, tv := stats(v); tv > 0.8*tv0 {
				t.Fatalf("total variation %v, want well below %v", tv, tv0)
			}
		}},
		{"solarize inverts above the threshold", func(c *Config) { c.Solarize = SolarizeConfig{P: 1, Threshold: Float(0.5)} },
			func(t *testing.T, v []float32) {
				for i := range v {
					want := base.Data[i]
					if want >= 0.5 {
						want = 1 - want
					}
					if !near(v[i], want, 1e-6) {
						t.Fatalf("pixel %d: %v, want %v", i, v[i], want)
					}
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := plain()
			tc.set(&cfg)
			tc.check(t, view(t, cfg, img).Data)
		})
	}
}

// photo is testdata/branches-32x24.png, a 32×24 RGB photo (see
// testdata/README.md).
func photo(t testing.TB) image.Image {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "branches-32x24.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 32 || b.Dy() != 24 || isGray(img) {
		t.Fatalf("photo is %T %v, want 32×24 colour", img, b)
	}
	return img
}

// TestColorOnRealPhoto checks the colour and crop transforms on a real RGB
// photo, whose channels differ (checked first, so that no check below
// passes on an image that is already gray). The default Size is the
// photo's shorter side, 24; plain() views are the pixels in [0, 1].
func TestColorOnRealPhoto(t *testing.T) {
	img := photo(t)
	base := view(t, plain(), img)
	const s = 24
	const n = s * s
	if base.C != 3 || base.H != s || base.W != s {
		t.Fatalf("base view %d×%d×%d, want 3×%d×%d", base.C, base.H, base.W, s, s)
	}
	rgb := func(d []float32, i int) (r, g, b float32) { return d[i], d[n+i], d[2*n+i] }
	luma := func(d []float32, i int) float32 {
		r, g, b := rgb(d, i)
		return lumaR*r + lumaG*g + lumaB*b
	}
	var spread float64 // mean |R−G| + |G−B|
	for i := range n {
		r, g, b := rgb(base.Data, i)
		spread += math.Abs(float64(r-g)) + math.Abs(float64(g-b))
	}
	if spread /= n; spread < 0.05 {
		t.Fatalf("the photo is nearly gray (mean channel spread %.3f): the checks below would be vacuous", spread)
	}
	equal := func(x, y []float32) bool {
		for i := range x {
			if math.Float32bits(x[i]) != math.Float32bits(y[i]) {
				return false
			}
		}
		return true
	}
	// maxDiff is the largest |x − y|.
	maxDiff := func(x, y []float32) float64 {
		var m float64
		for i := range x {
			m = max(m, math.Abs(float64(x[i]-y[i])))
		}
		return m
	}
	jitterOnly := func(j JitterConfig) Config {
		cfg := plain()
		cfg.Jitter = j
		return cfg
	}

	t.Run("grayscale gives the luma in every channel", func(t *testing.T) {
		cfg := plain()
		cfg.GrayscaleP = 1
		v := view(t, cfg, img)
		for i := range n {
			r, g, b := rgb(v.Data, i)
			if r != g || g != b || !near(r, luma(base.Data, i), 1e-6) {
				r0, g0, b0 := rgb(base.Data, i)
				t.Fatalf("pixel %d: (%v %v %v) → (%v %v %v), want the luma %v thrice", i, r0, g0, b0, r, g, b, luma(base.Data, i))
			}
		}
	})

	t.Run("saturation 0 gives gray", func(t *testing.T) {
		d := append([]float32(nil), base.Data...)
		saturate(d, n, 0)
		for i := range n {
			r, g, b := rgb(d, i)
			if !near(r, g, 1e-6) || !near(g, b, 1e-6) || !near(r, luma(base.Data, i), 1e-6) {
				t.Fatalf("pixel %d: (%v %v %v), want the luma %v thrice", i, r, g, b, luma(base.Data, i))
			}
		}
	})

	t.Run("saturation scales chroma and keeps luma", func(t *testing.T) {
		v := view(t, jitterOnly(JitterConfig{Brightness: Float(0), Contrast: Float(0), Saturation: 1, P: Float(1)}), img).Data
		f := math.NaN() // the one factor every pixel's chroma is scaled by
		checked := 0
		for i := range n {
			r, g, b := rgb(v, i)
			if min(r, g, b) <= 0 || max(r, g, b) >= 1 {
				continue // clipped
			}
			l0 := luma(base.Data, i)
			if !near(luma(v, i), l0, 1e-5) {
				t.Fatalf("pixel %d: luma %v, want %v", i, luma(v, i), l0)
			}
			for c := range 3 {
				x0 := base.Data[c*n+i]
				if math.Abs(float64(x0-l0)) < 0.05 {
					continue // too little chroma for a precise ratio
				}
				k := float64(v[c*n+i]-l0) / float64(x0-l0)
				if math.IsNaN(f) {
					f = k
				} else if math.Abs(k-f) > 1e-3 {
					t.Fatalf("pixel %d channel %d: chroma scaled by %v, others by %v", i, c, k, f)
				}
				checked++
			}
		}
		if checked < 20 || !(f >= 0 && f < 2) || math.Abs(f-1) < 0.01 {
			t.Fatalf("factor %v from %d values; want one in [0, 2), not 1, from ≥ 20", f, checked)
		}
	})

	t.Run("hue shift changes channels, keeps max and min", func(t *testing.T) {
		v := view(t, jitterOnly(JitterConfig{Brightness: Float(0), Contrast: Float(0), Hue: 0.5, P: Float(1)}), img).Data
		if d := maxDiff(v, base.Data); d < 0.05 {
			t.Fatalf("hue shift changed channels by at most %v", d)
		}
		var dl float64
		for i := range n {
			r0, g0, b0 := rgb(base.Data, i)
			r, g, b := rgb(v, i)
			// HSV keeps V = max and S, hence min; luma moves only within
			// [min, max].
			if !near(max(r, g, b), max(r0, g0, b0), 1e-5) || !near(min(r, g, b), min(r0, g0, b0), 1e-5) {
				t.Fatalf("pixel %d: (%v %v %v) → (%v %v %v): max or min changed", i, r0, g0, b0, r, g, b)
			}
			d := math.Abs(float64(luma(v, i) - luma(base.Data, i)))
			if d > float64(max(r0, g0, b0)-min(r0, g0, b0))+1e-5 {
				t.Fatalf("pixel %d: luma moved by %v, more than its channel spread", i, d)
			}
			dl += d
		}
		if dl /= n; dl > 0.05 {
			t.Fatalf("mean luma change %v, want roughly kept (≤ 0.05)", dl)
		}
	})

	t.Run("jitter probability", func(t *testing.T) {
		j := JitterConfig{Saturation: 0.4, Hue: 0.1} // brightness and contrast 0.4 by default
		j.P = Float(0)
		if v := view(t, jitterOnly(j), img); !equal(v.Data, base.Data) {
			t.Fatal("p = 0 changed the view")
		}
		j.P = Float(1)
		if v := view(t, jitterOnly(j), img); maxDiff(v.Data, base.Data) < 0.02 {
			t.Fatal("p = 1 left the view (nearly) unchanged")
		}
		j.P = Float(0.5)
		a := mustNew(t, jitterOnly(j))
		changed := 0
		var v pipeline.View
		for index := range int64(200) {
			if err := a.View(img, 1, 0, index, 0, &v); err != nil {
				t.Fatal(err)
			}
			if !equal(v.Data, base.Data) {
				changed++
			}
		}
		if changed < 70 || changed > 130 {
			t.Fatalf("p = 0.5: %d of 200 views jittered", changed)
		}
	})

	t.Run("random resized crop", func(t *testing.T) {
		cfg := plain()
		cfg.Crop = CropConfig{Scale: [2]float64{0.2, 0.5}, P: Float(1)}
		a := mustNew(t, cfg)
		p := cfg.params()
		sub := img.(interface {
			SubImage(image.Rectangle) image.Image
		})
		for index := range int64(20) {
			var v pipeline.View
			if err := a.View(img, 1, 0, index, 0, &v); err != nil {
				t.Fatal(err)
			}
			if maxDiff(v.Data, base.Data) < 0.05 {
				t.Fatalf("index %d: the crop looks like the whole image", index)
			}
			// The box the view was cut from, drawn from the same stream.
			r := newRNG(viewKey(1, 0, index, 0), streamCrop)
			r.bernoulli(p.cropP)
			box := sampleCrop(&r, 32, 24, p.scale, p.ratio)
			if box == fallbackCrop(32, 24, p.ratio) {
				t.Fatalf("index %d: the fallback box", index)
			}
			if err := boxFits(box, 32, 24, p.scale, p.ratio); err != nil {
				t.Fatalf("index %d: %v", index, err)
			}
			// The view is that box of the photo, resized.
			whole := plain()
			whole.Size = s
			want := view(t, whole, sub.SubImage(image.Rect(box.x, box.y, box.x+box.w, box.y+box.h)))
			if want.H != s {
				t.Fatalf("box %+v gave a %d×%d view, want %d×%d", box, want.H, want.W, s, s)
			}
			if d := maxDiff(v.Data, want.Data); d > 1e-6 {
				t.Fatalf("index %d: the view differs by %v from box %+v resized", index, d, box)
			}
		}
	})

	t.Run("per-channel normalisation", func(t *testing.T) {
		var mean, std [3]float64
		for c := range 3 {
			for _, x := range base.Data[c*n : (c+1)*n] {
				mean[c] += float64(x)
			}
			mean[c] /= n
			for _, x := range base.Data[c*n : (c+1)*n] {
				std[c] += (float64(x) - mean[c]) * (float64(x) - mean[c])
			}
			std[c] = math.Sqrt(std[c] / n)
		}
		if max(mean[0], mean[1], mean[2])-min(mean[0], mean[1], mean[2]) < 0.02 {
			t.Fatalf("channel means %v nearly equal: one value would do", mean)
		}
		cfg := plain()
		cfg.Mean, cfg.Std = mean[:], std[:]
		v := view(t, cfg, img).Data
		for c := range 3 {
			var m, sd float64
			for i := range n {
				x := v[c*n+i]
				if want := (base.Data[c*n+i] - float32(mean[c])) / float32(std[c]); !near(x, want, 1e-5) {
					t.Fatalf("channel %d pixel %d: %v, want %v", c, i, x, want)
				}
				m += float64(x)
				sd += float64(x) * float64(x)
			}
			m /= n
			if sd = math.Sqrt(sd/n - m*m); math.Abs(m) > 1e-4 || math.Abs(sd-1) > 1e-3 {
				t.Fatalf("channel %d normalised to mean %v, std %v; want 0 and 1", c, m, sd)
			}
		}
	})
}
