package augment

import (
	"math"
	"testing"
)

// TestTransformsOnRealImage switches on one transform at a time on a real
// Fashion-MNIST image (testdata/fmnist-2.png, 28×28 gray) and checks the
// property that defines it, against the view with every transform off.
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
		{"grayscale gives equal channels", func(c *Config) { c.Channels = 3; c.GrayscaleP = 1 }, func(t *testing.T, v []float32) {
			for y := range n {
				for x := range n {
					if g := at(v, 0, y, x); at(v, 1, y, x) != g || at(v, 2, y, x) != g || !near(g, at(base.Data, 0, y, x), 1e-6) {
						t.Fatalf("(%d,%d): channels %v %v %v", x, y, g, at(v, 1, y, x), at(v, 2, y, x))
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
