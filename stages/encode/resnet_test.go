package encode

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sinks/safetensors"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// The resnet18 tests use a narrow network (base width 4: 4 to 32
// channels) with a 16→8 head on 3×12×10 images, whose sides become 12×10,
// 6×5, 3×3 and 2×2 through the four layers (odd sides included), so that a
// shard of 2 still has 8 values per channel in layer4's BatchNorms.
var (
	resCfg = Config{Arch: ResNet18, Width: 4, Hidden: 16, Out: 8}
	resIn  = Input{C: 3, H: 12, W: 10}
)

// resWeights returns random resnet18 weights whose BatchNorm shifts are
// moved away from 0, so that few ReLUs (after bn1 and after each residual
// sum) sit near their kink, where central differences break down.
func resWeights(t testing.TB, cfg Config, in Input, seed uint64) *Weights {
	t.Helper()
	w := randomWeights(t, cfg, in, seed)
	for _, p := range w.Params {
		if strings.HasSuffix(p.Name, ".bias") && !strings.HasPrefix(p.Name, "head.") {
			for i := range p.Data {
				p.Data[i] = 0.3
			}
		}
	}
	return w
}

// TestResNet18FiniteDifferences checks the gradients of a whole resnet18
// replica (training mode, shard of 2) against central differences of
// sum(projection ⊙ g) on a few entries of every parameter, with
// TestReplicaFiniteDifferences's tolerance (2% of the tensor's largest
// gradient).
//
// resnet18 has thousands of ReLUs (8928 here: after bn1, after each
// residual sum, in the head), and a central difference is not the
// derivative where a step moves one of them across its kink (it is then
// off by up to that unit's whole contribution); with random data some
// pre-activation lies within 1e-4 of 0 about half the time. So, as bnCase
// does for one op, the input is drawn again until every ReLU's
// pre-activation is at least 5e-4 from 0; a sample takes a step of 1e-3,
// or 3e-4 if a ReLU changes state between θ−ε and θ+ε, and is skipped
// (and counted) if one still does; each tensor needs 4 samples. (Smaller
// steps drown the difference in float32 rounding: at 3e-5 a quarter of
// the samples are off by more than 2%.)
func TestResNet18FiniteDifferences(t *testing.T) {
	w := resWeights(t, resCfg, resIn, 3)
	const n = 2
	r := newReplica(t, w, n)
	var x []float32
	for draw := uint64(0); ; draw++ {
		if draw == 1000 {
			t.Fatal("no input keeps its ReLUs 5e-4 from their kinks")
		}
		x = randomSlice(1000+draw, n*resIn.Len(), 1)
		feats, _, err := r.Forward(x, Train)
		if err != nil {
			t.Fatal(err)
		}
		if _, margin := reluState(t, r, feats); margin >= 5e-4 {
			t.Logf("input draw %d: every ReLU pre-activation at least %.2g from 0", draw+1, margin)
			break
		}
	}
	g := randomSlice(5, n*w.Out(), 1)
	// obj is the objective and which ReLUs are active.
	obj := func() (float64, []bool) {
		feats, proj, err := r.Forward(x, Train)
		if err != nil {
			t.Fatal(err)
		}
		var s float64
		for i := range proj {
			s += float64(proj[i]) * float64(g[i])
		}
		on, _ := reluState(t, r, feats)
		return s, on
	}
	_, base := obj()
	if err := r.Backward(g); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(6, 6))
	checked, samples, small, skipped := 0, 0, 0, 0
	for _, p := range r.Params() {
		var worst, scale float64
		for _, v := range p.Grad {
			scale = math.Max(scale, math.Abs(float64(v)))
		}
		if scale == 0 {
			t.Errorf("%s: zero gradient", p.Name)
			continue
		}
		clean := 0
		for tries := 0; clean < 4 && tries < 20; tries++ {
			j := rng.IntN(len(p.Data))
			keep := p.Data[j]
			fd, ok := 0.0, false
			for _, eps := range []float32{1e-3, 3e-4} {
				p.Data[j] = keep + eps
				up, onUp := obj()
				p.Data[j] = keep - eps
				down, onDown := obj()
				p.Data[j] = keep
				if slices.Equal(onUp, base) && slices.Equal(onDown, base) {
					fd, ok = (up-down)/(2*float64(eps)), true
					if eps < 1e-3 {
						small++
					}
					break
				}
			}
			if !ok {
				skipped++
				continue
			}
			clean++
			worst = math.Max(worst, math.Abs(fd-float64(p.Grad[j])))
		}
		if clean < 4 {
			t.Errorf("%s: only %d samples where no ReLU changes state", p.Name, clean)
		}
		checked++
		samples += clean
		t.Logf("%-28s max |analytic − numeric| %.2e of max |grad| %.2e", p.Name, worst, scale)
		if worst > 2e-2*scale {
			t.Errorf("%s: gradient off by %.3g (max |grad| %.3g)", p.Name, worst, scale)
		}
	}
	t.Logf("%d ReLUs; %d samples compared (%d with the smaller step), %d skipped", len(base), samples, small, skipped)
	if want := 3 + 8*6 + 3*3 + 4; checked != want {
		t.Errorf("checked %d parameter tensors, want %d", checked, want)
	}
}

// reluState computes, in float64, the pre-activation of every ReLU of the
// replica's last forward pass (the BatchNorms' fused ones and the residual
// sums' from their inputs, the head's from feats) and returns which are
// positive and the smallest |pre-activation|.
func reluState(t *testing.T, r *Replica, feats []float32) (on []bool, margin float64) {
	t.Helper()
	margin = math.Inf(1)
	add := func(z float64) {
		on = append(on, z > 0)
		margin = math.Min(margin, math.Abs(z))
	}
	for _, nd := range r.g.AllNodes() {
		bn, isBN := nd.Op().(*batchNormOp)
		_, isRes := nd.Op().(*residualOp)
		if !(isBN && bn.relu) && !isRes {
			continue
		}
		var ins [][]float32 // the 4-D inputs: x, or a and b
		for it := r.g.From(nd.ID()); it.Next(); {
			if c := it.Node().(*G.Node); c.Dims() == 4 {
				v, err := valueF32(c.Value())
				if err != nil {
					t.Fatal(err)
				}
				ins = append(ins, v)
			}
		}
		if isRes {
			if len(ins) != 2 {
				t.Fatalf("%v: %d inputs", nd.Op(), len(ins))
			}
			for i := range ins[0] {
				add(float64(ins[0][i]) + float64(ins[1][i]))
			}
			continue
		}
		name := bn.id[strings.Index(bn.id, "(")+1 : len(bn.id)-1] // batchnorm#7(layer1.0.bn1)
		gamma, beta := r.Param(name+".weight").Data, r.Param(name+".bias").Data
		for i := 0; i < bn.n; i++ {
			for c := 0; c < bn.c; c++ {
				for _, e := range ins[0][(i*bn.c+c)*bn.hw : (i*bn.c+c+1)*bn.hw] {
					add(float64(gamma[c])*(float64(e)-float64(bn.mean[c]))*float64(bn.invStd[c]) + float64(beta[c]))
				}
			}
		}
	}
	w0, b0 := r.Param("head.0.weight"), r.Param("head.0.bias")
	hid, f := w0.Shape[0], w0.Shape[1]
	for i := 0; i < r.ShardSize(); i++ {
		for h := 0; h < hid; h++ {
			z := float64(b0.Data[h])
			for k := 0; k < f; k++ {
				z += float64(w0.Data[h*f+k]) * float64(feats[i*f+k])
			}
			add(z)
		}
	}
	return on, margin
}

// resnet18Names is torchvision's resnet18 state_dict, less fc and
// num_batches_tracked, plus the head: the parameters (weights, BatchNorm
// scales and shifts) and the buffers (running statistics), in order, with
// their shapes, for base width 64 on c channels with a hidden→out head.
func resnet18Names(c, hidden, out int) (params, buffers []string, shapes map[string][]int) {
	shapes = map[string][]int{}
	conv := func(name string, o, i, k int) {
		params = append(params, name+".weight")
		shapes[name+".weight"] = []int{o, i, k, k}
	}
	bn := func(name string, ch int) {
		params = append(params, name+".weight", name+".bias")
		buffers = append(buffers, name+".running_mean", name+".running_var")
		for _, s := range []string{".weight", ".bias", ".running_mean", ".running_var"} {
			shapes[name+s] = []int{ch}
		}
	}
	conv("conv1", 64, c, 3)
	bn("bn1", 64)
	in := 64
	for l, width := range []int{64, 128, 256, 512} {
		for b := range 2 {
			p := fmt.Sprintf("layer%d.%d", l+1, b)
			conv(p+".conv1", width, in, 3)
			bn(p+".bn1", width)
			conv(p+".conv2", width, width, 3)
			bn(p+".bn2", width)
			if in != width {
				conv(p+".downsample.0", width, in, 1)
				bn(p+".downsample.1", width)
			}
			in = width
		}
	}
	params = append(params, "head.0.weight", "head.0.bias", "head.2.weight", "head.2.bias")
	shapes["head.0.weight"], shapes["head.0.bias"] = []int{hidden, 512}, []int{hidden}
	shapes["head.2.weight"], shapes["head.2.bias"] = []int{out, hidden}, []int{out}
	return params, buffers, shapes
}

// TestResNet18Weights checks the full-width network's names, shapes,
// parameter count and initialisation.
func TestResNet18Weights(t *testing.T) {
	w := randomWeights(t, Config{Arch: ResNet18}, Input{C: 3, H: 32, W: 32}, 1)
	if w.Config().Width != DefaultResNetWidth || w.Features() != 512 || w.Out() != DefaultOut {
		t.Errorf("width %d, features %d, out %d; want 64, 512, 128", w.Config().Width, w.Features(), w.Out())
	}
	wantP, wantB, shapes := resnet18Names(3, DefaultHidden, DefaultOut)
	var gotP, gotB []string
	for _, p := range w.Params {
		gotP = append(gotP, p.Name)
	}
	for _, b := range w.Buffers {
		gotB = append(gotB, b.Name)
	}
	if !slices.Equal(gotP, wantP) {
		t.Errorf("params\n%v\nwant\n%v", gotP, wantP)
	}
	if !slices.Equal(gotB, wantB) {
		t.Errorf("buffers\n%v\nwant\n%v", gotB, wantB)
	}
	var backbone, total int
	for _, p := range w.all() {
		if !slices.Equal(p.Shape, shapes[p.Name]) {
			t.Errorf("%s: shape %v, want %v", p.Name, p.Shape, shapes[p.Name])
		}
		if len(p.Data) != shapeSize(p.Shape) {
			t.Errorf("%s: %d values for shape %v", p.Name, len(p.Data), p.Shape)
		}
	}
	for _, p := range w.Params {
		total += len(p.Data)
		if !strings.HasPrefix(p.Name, "head.") {
			backbone += len(p.Data)
		}
		isBN := strings.Contains(p.Name, "bn") || strings.Contains(p.Name, "downsample.1")
		if want := isBN || strings.HasSuffix(p.Name, ".bias"); p.NoDecay != want {
			t.Errorf("%s: NoDecay %v, want %v", p.Name, p.NoDecay, want)
		}
		// Convolutions and Linear layers uniform in ±1/√fan_in; BatchNorm
		// scales 1, shifts 0.
		var m float64
		for _, v := range p.Data {
			m = math.Max(m, math.Abs(float64(v)))
		}
		switch {
		case isBN && strings.HasSuffix(p.Name, ".weight"):
			if slices.ContainsFunc(p.Data, func(v float32) bool { return v != 1 }) {
				t.Errorf("%s is not all ones", p.Name)
			}
		case isBN:
			if m != 0 {
				t.Errorf("%s is not all zeros", p.Name)
			}
		default:
			fanIn := shapeSize(p.Shape[1:])
			if strings.HasSuffix(p.Name, ".bias") {
				fanIn = w.Tensor(strings.TrimSuffix(p.Name, ".bias") + ".weight").Shape[1]
			}
			bound := 1 / math.Sqrt(float64(fanIn))
			if m > bound || m < 0.8*bound {
				t.Errorf("%s: max |v| = %g, want just under %g", p.Name, m, bound)
			}
		}
	}
	for _, b := range w.Buffers {
		want := float32(0)
		if strings.HasSuffix(b.Name, ".running_var") {
			want = 1
		}
		if slices.ContainsFunc(b.Data, func(v float32) bool { return v != want }) {
			t.Errorf("%s is not all %g", b.Name, want)
		}
	}
	t.Logf("%d parameter tensors, %d buffers; %d parameters (backbone %d, head %d)", len(w.Params), len(w.Buffers), total, backbone, total-backbone)
	// torchvision's resnet18 with a 3×3 conv1 and no fc: 11,168,832.
	if backbone != 11_168_832 || total != 11_251_008 {
		t.Errorf("%d parameters (backbone %d), want 11251008 (11168832)", total, backbone)
	}

	// Width scales every channel count; one channel in.
	s := randomWeights(t, Config{Arch: ResNet18, Width: 8, Hidden: 32, Out: 16}, Input{C: 1, H: 8, W: 8}, 1)
	for name, want := range map[string][]int{
		"conv1.weight": {8, 1, 3, 3}, "layer2.0.downsample.0.weight": {16, 8, 1, 1},
		"layer4.1.conv2.weight": {64, 64, 3, 3}, "layer4.1.bn2.running_var": {64},
		"head.0.weight": {32, 64}, "head.2.bias": {16},
	} {
		if p := s.Tensor(name); p == nil || !slices.Equal(p.Shape, want) {
			t.Errorf("width 8: %s is %v, want shape %v", name, p, want)
		}
	}
	if s.Features() != 64 {
		t.Errorf("width 8: %d features, want 64", s.Features())
	}
}

func shapeSize(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

func TestResNet18Config(t *testing.T) {
	for _, c := range []struct {
		cfg   Config
		field string
	}{
		{Config{Arch: ResNet18}, ""},
		{Config{Arch: ResNet18, Width: MaxResNetWidth, Hidden: 8}, ""},
		{Config{Arch: ResNet18, Width: -1}, "width"},
		{Config{Arch: ResNet18, Width: MaxResNetWidth + 1}, "width"},
		{Config{Width: 16}, "width"}, // convnet-s has fixed widths
		{Config{Arch: ConvNetS, Width: 64}, "width"},
		{Config{Arch: "resnet-18"}, "arch"},
	} {
		err := c.cfg.Validate()
		var fe *pipeline.FieldError
		switch {
		case c.field == "" && err != nil:
			t.Errorf("%+v: %v", c.cfg, err)
		case c.field != "" && (!errors.As(err, &fe) || fe.Field != c.field):
			t.Errorf("%+v: got %v, want a FieldError on %q", c.cfg, err, c.field)
		}
	}
	if err := (Config{Arch: "resnet-18"}).Validate(); err == nil || !strings.Contains(err.Error(), `"resnet18"`) {
		t.Errorf("an unknown arch's error does not list resnet18: %v", err)
	}
}

// TestResNet18SaveLoad round-trips resnet18 weights through a safetensors
// file, and refuses files of another architecture or width.
func TestResNet18SaveLoad(t *testing.T) {
	a := resWeights(t, resCfg, resIn, 1)
	for i, b := range a.Buffers { // running statistics other than 0 and 1
		for j, v := range randomSlice(7+uint64(i), len(b.Data), 1) {
			b.Data[j] = v
			if strings.HasSuffix(b.Name, ".running_var") {
				b.Data[j] = 0.5 + v*v
			}
		}
	}
	path := filepath.Join(t.TempDir(), "model.safetensors")
	if err := a.Save(path, map[string]string{"step": "3"}); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata["arch"] != ResNet18 || f.Metadata["input"] != "3x12x10" || f.Metadata["step"] != "3" {
		t.Errorf("metadata %v", f.Metadata)
	}
	if len(f.Tensors) != len(a.Params)+len(a.Buffers) {
		t.Errorf("file holds %d tensors, want %d", len(f.Tensors), len(a.Params)+len(a.Buffers))
	}
	if tt := f.Tensors["layer3.0.downsample.0.weight"]; !slices.Equal(tt.Shape, []int{16, 8, 1, 1}) {
		t.Errorf("layer3.0.downsample.0.weight stored with shape %v", tt.Shape)
	}
	b := randomWeights(t, resCfg, resIn, 2)
	if err := b.LoadFile(path, ""); err != nil {
		t.Fatal(err)
	}
	for i, p := range a.all() {
		if q := b.all()[i]; q.Name != p.Name || !slices.Equal(p.Data, q.Data) {
			t.Errorf("%s differs after Save and LoadFile", p.Name)
		}
	}
	// The loaded weights compute what the saved ones do.
	x := randomSlice(8, 2*resIn.Len(), 1)
	_, pa, err := newReplica(t, a, 2).Forward(x, Eval)
	if err != nil {
		t.Fatal(err)
	}
	_, pb, err := newReplica(t, b, 2).Forward(x, Eval)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pa, pb) {
		t.Error("loaded weights give another projection")
	}
	// Another width or another architecture: refused, naming a tensor,
	// and nothing changes.
	for _, cfg := range []Config{{Arch: ResNet18, Width: 8, Hidden: 16, Out: 8}, {Hidden: 16, Out: 8}} {
		c := randomWeights(t, cfg, resIn, 3)
		keep := slices.Clone(c.Params[0].Data)
		if err := c.LoadFile(path, ""); err == nil || !strings.Contains(err.Error(), ".weight") {
			t.Errorf("%s width %d: loading width-4 resnet18 weights: %v", cfg.Arch, cfg.Width, err)
		}
		if !slices.Equal(c.Params[0].Data, keep) {
			t.Error("a failed Load changed the weights")
		}
	}
}

// TestResNet18Eval checks eval mode as TestReplicaEval does for convnet-s:
// with every running statistic set to the batch statistics of a training
// pass, an eval pass gives the training pass's outputs and changes no
// running statistic. It also checks the training pass's running-statistics
// update on one BatchNorm of each kind, and that eval mode takes a single
// image, which training mode cannot (layer4 is then 1×1).
func TestResNet18Eval(t *testing.T) {
	w := resWeights(t, resCfg, resIn, 5)
	const n = 2
	r := newReplica(t, w, n)
	x := randomSlice(9, n*resIn.Len(), 1)
	fTrain, pTrain, err := r.Forward(x, Train)
	if err != nil {
		t.Fatal(err)
	}
	fTrain, pTrain = slices.Clone(fTrain), slices.Clone(pTrain)
	if len(fTrain) != n*w.Features() || len(pTrain) != n*w.Out() {
		t.Fatalf("features %d, projection %d values; want %d, %d", len(fTrain), len(pTrain), n*w.Features(), n*w.Out())
	}
	ops := batchNormOps(r)
	if len(ops) != 1+8*2+3 {
		t.Fatalf("%d BatchNorm ops, want 20", len(ops))
	}
	// After one training pass from mean 0 and variance 1, each running
	// mean is 0.1·μ and each running variance 0.9 + 0.1·unbiased σ².
	for _, name := range []string{"bn1", "layer1.0.bn2", "layer4.0.downsample.1", "layer4.1.bn1"} {
		var op *batchNormOp
		for _, o := range ops {
			if strings.Contains(o.id, "("+name+")") {
				op = o
			}
		}
		if op == nil {
			t.Fatalf("no BatchNorm op %s", name)
		}
		m := float64(op.n * op.hw)
		for c := range op.mean {
			is := float64(op.invStd[c])
			wantVar := 0.9 + 0.1*(1/(is*is)-BNEps)*m/(m-1)
			gotMean := float64(replicaBuffer(r, name+".running_mean")[c])
			gotVar := float64(replicaBuffer(r, name+".running_var")[c])
			if math.Abs(gotMean-0.1*float64(op.mean[c])) > 1e-6 || math.Abs(gotVar-wantVar) > 1e-4*wantVar {
				t.Errorf("%s[%d]: running mean %g, var %g; want %g, %g", name, c, gotMean, gotVar, 0.1*op.mean[c], wantVar)
			}
		}
	}
	for _, op := range ops {
		for c := range op.mean {
			op.group.runMean[c] = op.mean[c]
			is := float64(op.invStd[c])
			op.group.runVar[c] = float32(1/(is*is) - BNEps)
		}
	}
	before := make([][]float32, len(r.Buffers()))
	for i, b := range r.Buffers() {
		before[i] = slices.Clone(b.Data)
	}
	fEval, pEval, err := r.Forward(x, Eval)
	if err != nil {
		t.Fatal(err)
	}
	if e := relErr(fEval, fTrain); e > 1e-4 {
		t.Errorf("eval features differ from training features by %.3g", e)
	}
	if e := relErr(pEval, pTrain); e > 1e-4 {
		t.Errorf("eval projection differs from training projection by %.3g", e)
	}
	for i, b := range r.Buffers() {
		if !slices.Equal(b.Data, before[i]) {
			t.Errorf("%s changed in eval mode", b.Name)
		}
	}
	if w.Tensor("layer2.0.bn1.running_var").Data[0] != 1 {
		t.Error("a replica changed its Weights' running statistics")
	}

	// One image of 8×8: layer4 is 1×1, one value per channel.
	in := Input{C: 3, H: 8, W: 8}
	one := newReplica(t, resWeights(t, resCfg, in, 6), 1)
	if _, _, err := one.Forward(randomSlice(1, in.Len(), 1), Train); err == nil || !strings.Contains(err.Error(), "more than one value") {
		t.Errorf("training on one 8×8 image: %v", err)
	}
	f1, err := one.Features(randomSlice(1, in.Len(), 1), Eval)
	if err != nil {
		t.Fatalf("eval on one 8×8 image: %v", err)
	}
	if len(f1) != 32 {
		t.Errorf("%d features, want 32", len(f1))
	}
}

// replicaBuffer returns the replica's running statistic called name.
func replicaBuffer(r *Replica, name string) []float32 {
	for _, b := range r.Buffers() {
		if b.Name == name {
			return b.Data
		}
	}
	return nil
}

// TestResNet18Pool runs resnet18 in a Pool (two views, SimCLR's way, and
// MoCo's key encoder) and checks one Encode/Backward step against one
// replica per BatchNorm group (the whole step), as TestPoolExact does for
// convnet-s: its 2 or 4 shards take their BatchNorm statistics over the
// group at every layer, the downsampling shortcuts' included.
func TestResNet18Pool(t *testing.T) {
	const n = 4
	for _, c := range []struct {
		name  string
		shard int
		key   bool
	}{{"two-view/shard=2", 2, false}, {"moco/shard=2", 2, true}} {
		t.Run(c.name, func(t *testing.T) {
			w := resWeights(t, resCfg, resIn, 11)
			p := newPool(t, w, PoolConfig{Batch: n, Shard: c.shard, KeyEncoder: c.key})
			b := poolBatch(n, resIn, 21)
			g := poolGrads(n, w.Out(), 31)
			group := 2 * n
			if c.key {
				group = n
			}
			want := separateGroups(t, w, p.KeyWeights(), b, g, group)
			got := poolStep(t, p, b, g)
			checkResults(t, got, want, w.Params, 1e-5)
			for k, q := range p.Params() {
				if q.Name != w.Params[k].Name || len(q.Grad) != len(w.Params[k].Data) {
					t.Fatalf("pool param %d is %s of %d, want %s", k, q.Name, len(q.Grad), w.Params[k].Name)
				}
			}
			if err := p.SyncBuffers(); err != nil {
				t.Fatal(err)
			}
			if w.Tensor("layer4.1.bn2.running_var").Data[0] == 1 {
				t.Error("SyncBuffers left the initial running variance")
			}
		})
	}
}

// residualCase is residualOp on n×c×h×w inputs, drawn again until no sum
// is within 0.05 of the ReLU's kink.
func residualCase(n, c, h, w int) opCase {
	return opCase{
		name:   fmt.Sprintf("residual n%d c%d %dx%d", n, c, h, w),
		shapes: [][]int{{n, c, h, w}, {n, c, h, w}},
		apply: func(st *runState, in G.Nodes) (*G.Node, error) {
			return G.ApplyOp(newResidualOp("test", st, n, c, h, w), in[0], in[1])
		},
		init: func(rng *rand.Rand, in [][]float32) {
		retry:
			randn(rng, in[0])
			randn(rng, in[1])
			for i := range in[0] {
				if math.Abs(float64(in[0][i]+in[1][i])) < 0.05 {
					goto retry
				}
			}
		},
	}
}

// TestResidualOp checks residualOp's gradient (SymDiff) against central
// differences and its DoDiff against its SymDiff.
func TestResidualOp(t *testing.T) {
	c := residualCase(2, 2, 2, 3)
	checkGrads(t, c, 1)

	rng := rand.New(rand.NewPCG(1, 7))
	o := newOpGraph(t, c, rng)
	o.run(t)
	g := G.NewGraph()
	var in G.Nodes
	for j, d := range o.in {
		in = append(in, G.NewTensor(g, tensor.Float32, 4, G.WithShape(d.Shape()...), G.WithName(fmt.Sprint("in", j)), G.WithValue(d.Clone().(*tensor.Dense))))
	}
	out, err := c.apply(&runState{train: true}, in)
	if err != nil {
		t.Fatal(err)
	}
	rt := tensor.New(tensor.WithShape(out.Shape()...), tensor.WithBacking(slices.Clone(o.r)))
	rn := G.NewTensor(g, tensor.Float32, 4, G.WithShape(out.Shape()...), G.WithName("r"), G.WithValue(rt))
	G.Must(G.Sum(G.Must(G.HadamardProd(out, rn))))
	vm := G.NewLispMachine(g)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	want, err := valueF32(o.grads[0].Value())
	if err != nil {
		t.Fatal(err)
	}
	if relErr(want, make([]float32, len(want))) == 0 {
		t.Fatal("zero gradient, nothing compared")
	}
	for j, n := range in {
		gv, err := n.Grad()
		if err != nil {
			t.Fatal(err)
		}
		got, err := valueF32(gv)
		if err != nil {
			t.Fatal(err)
		}
		if e := relErr(got, want); e > 1e-6 {
			t.Errorf("input %d: DoDiff differs from SymDiff by %.3g relative", j, e)
		}
	}
}

// BenchmarkResNet18Step is one training step of the full-width resnet18
// on a shard of 256 32×32 color images: forward in training mode, then
// backward from a random dL/dprojection. It takes tens of seconds on two
// cores: run it with -benchtime 1x.
func BenchmarkResNet18Step(b *testing.B) {
	const n = 256
	in := Input{C: 3, H: 32, W: 32}
	w, err := NewWeights(Config{Arch: ResNet18}, in, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		b.Fatal(err)
	}
	r, err := NewReplica(w, n)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	x := randomSlice(3, n*in.Len(), 1)
	g := randomSlice(4, n*w.Out(), 1.0/n)
	// One step first: the replica allocates its buffers on the first run.
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
}
