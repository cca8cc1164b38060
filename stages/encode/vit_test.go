package encode

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sinks/safetensors"
)

const vitVectors = "testdata/vit_tiny.safetensors"

// TestViTVectors checks the features, the projection and the gradient of
// every parameter against PyTorch's (testdata/vit_tiny.safetensors), and
// that the weights' names and shapes are exactly the file's param.*.
func TestViTVectors(t *testing.T) {
	f, err := safetensors.Read(vitVectors)
	if err != nil {
		t.Fatal(err)
	}
	in := f.Tensors["input"]
	w, err := NewWeights(Config{Arch: ViT}, Input{C: in.Shape[1], H: in.Shape[2], W: in.Shape[3]}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Load(f, "param."); err != nil {
		t.Fatal(err)
	}
	var params int
	for name := range f.Tensors {
		if strings.HasPrefix(name, "param.") {
			params++
			if w.Tensor(strings.TrimPrefix(name, "param.")) == nil {
				t.Errorf("the file's %s is not a parameter of ours", name)
			}
		}
	}
	if params != len(w.Params) || len(w.Buffers) != 0 {
		t.Errorf("%d params and %d buffers, the file has %d params", len(w.Params), len(w.Buffers), params)
	}
	r, err := NewReplica(w, in.Shape[0])
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const tol = 1e-4
	check := func(name string, got []float32, log bool) {
		t.Helper()
		want, err := f.F32(name)
		if err != nil {
			t.Fatal(err)
		}
		e := relErr(got, want)
		if log {
			t.Logf("%-32s rel err %.2e", name, e)
		}
		if e > tol || math.IsNaN(e) {
			t.Errorf("%s: relative error %.3g > %g", name, e, tol)
		}
	}
	// The first pass is logged; the others (eval mode, which is the same
	// without BatchNorm, and a rerun) must agree as well.
	for i, mode := range []Mode{Train, Eval, Train} {
		feats, proj, err := r.Forward(in.F32, mode)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Backward(f.Tensors["upstream_grad"].F32); err != nil {
			t.Fatal(err)
		}
		check("features", feats, i == 0)
		check("projection", proj, i == 0)
		for _, p := range r.Params() {
			check("grad."+p.Name, p.Grad, i == 0)
		}
	}
}

func TestViTConfig(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   Config
		in    Input
		field string // "" for no error
		want  string
	}{
		{"defaults", Config{Arch: ViT}, Input{1, 28, 28}, "", ""},
		{"patch 4 on 32×32×3", Config{Arch: ViT, Patch: 4, Width: 48, Heads: 3, Depth: 1, MLP: 96}, Input{3, 32, 32}, "", ""},
		{"patch does not divide", Config{Arch: ViT, Patch: 5}, Input{1, 28, 28}, "patch", "does not divide the 28×28"},
		{"patch does not divide one side", Config{Arch: ViT, Patch: 4}, Input{1, 28, 30}, "patch", "2"},
		{"heads do not divide width", Config{Arch: ViT, Heads: 3}, Input{1, 28, 28}, "heads", "divide the width 64"},
		{"negative depth", Config{Arch: ViT, Depth: -1}, Input{1, 28, 28}, "depth", ""},
		{"width too large", Config{Arch: ViT, Width: MaxViTWidth + 1}, Input{1, 28, 28}, "width", ""},
		{"mlp for convnet-s", Config{MLP: 3}, Input{1, 28, 28}, "mlp", "vit only"},
		{"patch for resnet18", Config{Arch: ResNet18, Patch: 4}, Input{1, 28, 28}, "patch", "vit only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := NewWeights(tc.cfg, tc.in, nil)
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				if w.Features() != w.Config().Width {
					t.Errorf("features %d, width %d", w.Features(), w.Config().Width)
				}
				return
			}
			var fe *pipeline.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(fe.Msg, tc.want) {
				t.Errorf("NewWeights = %v, want a FieldError on %q mentioning %q", err, tc.field, tc.want)
			}
		})
	}
}

// TestViTInit checks the initial weights' statistics and NoDecay marks.
func TestViTInit(t *testing.T) {
	w, err := NewWeights(Config{Arch: ViT}, Input{1, 28, 28}, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	var total int
	for _, p := range w.Params {
		total += len(p.Data)
		weight := strings.HasSuffix(p.Name, ".weight")
		norm := strings.Contains(p.Name, "norm")
		wantNoDecay := !weight || norm
		if p.NoDecay != wantNoDecay {
			t.Errorf("%s: NoDecay %v, want %v", p.Name, p.NoDecay, wantNoDecay)
		}
		var s, ss float64
		for _, e := range p.Data {
			s += float64(e)
			ss += float64(e) * float64(e)
		}
		mean, std := s/float64(len(p.Data)), math.Sqrt(ss/float64(len(p.Data)))
		switch {
		case norm && weight:
			if mean != 1 || std != 1 {
				t.Errorf("%s: not all ones", p.Name)
			}
		case p.Name == "patch_embed.weight" || p.Name == "patch_embed.bias":
			if b := 1 / math.Sqrt(49); std > b || std < b/3 {
				t.Errorf("%s: rms %g, want PyTorch's uniform ±%g", p.Name, std, b)
			}
		case weight || p.Name == "cls_token" || p.Name == "pos_embed":
			if len(p.Data) >= 1000 && math.Abs(std-vitInitStd) > 0.002 {
				t.Errorf("%s: std %g, want %g", p.Name, std, vitInitStd)
			}
		default: // biases
			if std != 0 {
				t.Errorf("%s: not zero", p.Name)
			}
		}
	}
	t.Logf("%d parameters", total)
	if total != 96256 {
		t.Errorf("%d parameters, want 96,256", total)
	}
}

// BenchmarkViTStep is one training step of the tiny vit (the defaults: patch
// 7, width 64, depth 2, heads 4, mlp 128) on a shard of 256 28×28 gray
// images, as BenchmarkStep for convnet-s; cmd/reference/vit_reference.py
// times the same in PyTorch.
func BenchmarkViTStep(b *testing.B) {
	const n = 256
	in := Input{C: 1, H: 28, W: 28}
	w, err := NewWeights(Config{Arch: ViT}, in, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		b.Fatal(err)
	}
	r, err := NewReplica(w, n)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	rng := rand.New(rand.NewPCG(3, 4))
	x := make([]float32, n*in.Len())
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	g := make([]float32, n*w.Out())
	for i := range g {
		g[i] = float32(rng.NormFloat64()) / n
	}
	if _, _, err := r.Forward(x, Train); err != nil {
		b.Fatal(err)
	}
	if err := r.Backward(g); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, _, err := r.Forward(x, Train); err != nil {
			b.Fatal(err)
		}
		if err := r.Backward(g); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/step")
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "images/s")
}

// TestViTShardSizes checks that one replica over 96 images gives the
// features, projection and gradients of 96 replicas of one image (summed),
// so that the large matrix products (gonum's parallel SGEMM) and the
// per-image ones agree.
func TestViTShardSizes(t *testing.T) {
	const n = 96
	in := Input{C: 1, H: 28, W: 28}
	w, err := NewWeights(Config{Arch: ViT}, in, rand.New(rand.NewPCG(5, 6)))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	x, g := make([]float32, n*in.Len()), make([]float32, n*w.Out())
	randn(rng, x)
	randn(rng, g)
	big, err := NewReplica(w, n)
	if err != nil {
		t.Fatal(err)
	}
	defer big.Close()
	one, err := NewReplica(w, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	feats, proj, err := big.Forward(x, Train)
	if err != nil {
		t.Fatal(err)
	}
	feats, proj = slices.Clone(feats), slices.Clone(proj)
	if err := big.Backward(g); err != nil {
		t.Fatal(err)
	}
	sum := make([][]float32, len(big.Params()))
	for i, p := range big.Params() {
		sum[i] = make([]float32, len(p.Grad))
	}
	f1, p1 := make([]float32, 0, len(feats)), make([]float32, 0, len(proj))
	for i := 0; i < n; i++ {
		f, p, err := one.Forward(x[i*in.Len():(i+1)*in.Len()], Train)
		if err != nil {
			t.Fatal(err)
		}
		f1, p1 = append(f1, f...), append(p1, p...)
		if err := one.Backward(g[i*w.Out() : (i+1)*w.Out()]); err != nil {
			t.Fatal(err)
		}
		for j, q := range one.Params() {
			for k, e := range q.Grad {
				sum[j][k] += e
			}
		}
	}
	if e := relErr(feats, f1); e > 1e-5 {
		t.Errorf("features differ by %.3g", e)
	}
	if e := relErr(proj, p1); e > 1e-5 {
		t.Errorf("projection differs by %.3g", e)
	}
	var worst float64
	for i, p := range big.Params() {
		e := relErr(p.Grad, sum[i])
		worst = math.Max(worst, e)
		if e > 1e-4 {
			t.Errorf("grad %s differs by %.3g", p.Name, e)
		}
	}
	t.Logf("worst gradient difference %.2e", worst)
}

// TestViTPool runs vit in a Pool (MoCo's key encoder, and both views
// through the encoder), which has no running statistics to keep: its
// steps must be those of separate replicas, one per shard, and with no
// BatchNorm the shard size must not change them.
func TestViTPool(t *testing.T) {
	in := Input{C: 1, H: 8, W: 8}
	cfg := Config{Arch: ViT, Patch: 4, Width: 16, Heads: 2, Depth: 1, MLP: 32, Hidden: 16, Out: 8}
	for _, key := range []bool{true, false} {
		t.Run(map[bool]string{true: "moco", false: "two-view"}[key], func(t *testing.T) {
			var first stepResult
			for i, shard := range []int{poolN, 2} {
				w, err := NewWeights(cfg, in, rand.New(rand.NewPCG(3, 3)))
				if err != nil {
					t.Fatal(err)
				}
				p := newPool(t, w, PoolConfig{Batch: poolN, Shard: shard, KeyEncoder: key})
				if err := p.SyncBuffers(); err != nil {
					t.Fatal(err)
				}
				if err := p.LoadBuffers(); err != nil {
					t.Fatal(err)
				}
				b := poolBatch(poolN, in, 21)
				g := poolGrads(poolN, w.Out(), 31)
				want := separateGroups(t, w, p.KeyWeights(), b, g, shard)
				got := poolStep(t, p, b, g)
				checkResults(t, got, want, w.Params, 1e-5)
				if i == 0 {
					first = got
				} else {
					checkResults(t, got, first, w.Params, 1e-5)
				}
			}
		})
	}
}

// BenchmarkViTPoolStep is BenchmarkViTStep's 256 images as the training
// flows run them: a Pool with the default shards (the two views of 128
// samples, 8 shards of 32), forward then backward and the sum of the
// shards' gradients.
func BenchmarkViTPoolStep(b *testing.B) {
	const n = 128 // samples; two views each
	in := Input{C: 1, H: 28, W: 28}
	w, err := NewWeights(Config{Arch: ViT}, in, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		b.Fatal(err)
	}
	p := newPool(b, w, PoolConfig{Batch: n})
	batch := poolBatch(n, in, 5)
	g := poolGrads(n, w.Out(), 6)
	poolStep(b, p, batch, g)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		poolStep(b, p, batch, g)
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/step")
	b.ReportMetric(float64(2*n*b.N)/b.Elapsed().Seconds(), "images/s")
}
