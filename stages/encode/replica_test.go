package encode

import (
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sinks/safetensors"
)

func randomWeights(t testing.TB, cfg Config, in Input, seed uint64) *Weights {
	t.Helper()
	w, err := NewWeights(cfg, in, rand.New(rand.NewPCG(seed, 1)))
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func randomSlice(seed uint64, n int, scale float32) []float32 {
	rng := rand.New(rand.NewPCG(seed, 2))
	d := make([]float32, n)
	for i := range d {
		d[i] = scale * float32(rng.NormFloat64())
	}
	return d
}

func newReplica(t testing.TB, w *Weights, n int) *Replica {
	t.Helper()
	r, err := NewReplica(w, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// objective is sum(projection ⊙ g) of a training forward pass, in float64.
func objective(t *testing.T, r *Replica, x, g []float32) float64 {
	t.Helper()
	_, p, err := r.Forward(x, Train)
	if err != nil {
		t.Fatal(err)
	}
	var s float64
	for i := range p {
		s += float64(p[i]) * float64(g[i])
	}
	return s
}

// TestReplicaFiniteDifferences checks a whole replica of another shape
// than the test vectors' (3 channels, 8×8, head 16→8) against central
// differences on a few entries of every parameter.
func TestReplicaFiniteDifferences(t *testing.T) {
	in := Input{C: 3, H: 8, W: 10}
	w := randomWeights(t, Config{Hidden: 16, Out: 8}, in, 3)
	// BatchNorm shifts away from 0, so that few ReLUs sit near their kink.
	for _, p := range w.Params {
		if strings.HasSuffix(p.Name, ".bias") && strings.HasPrefix(p.Name, "backbone") {
			for i := range p.Data {
				p.Data[i] = 0.3
			}
		}
	}
	const n = 4
	r := newReplica(t, w, n)
	x := randomSlice(4, n*in.Len(), 1)
	g := randomSlice(5, n*w.Out(), 1)
	objective(t, r, x, g)
	if err := r.Backward(g); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(6, 6))
	const eps = 1e-3
	for _, p := range r.Params() {
		var worst, scale float64
		for _, v := range p.Grad {
			scale = math.Max(scale, math.Abs(float64(v)))
		}
		for k := 0; k < 4; k++ {
			j := rng.IntN(len(p.Data))
			keep := p.Data[j]
			p.Data[j] = keep + eps
			up := objective(t, r, x, g)
			p.Data[j] = keep - eps
			down := objective(t, r, x, g)
			p.Data[j] = keep
			fd := (up - down) / (2 * eps)
			worst = math.Max(worst, math.Abs(fd-float64(p.Grad[j])))
		}
		t.Logf("%-20s max |analytic − numeric| %.2e of max |grad| %.2e", p.Name, worst, scale)
		if worst > 2e-2*scale {
			t.Errorf("%s: gradient off by %.3g (max |grad| %.3g)", p.Name, worst, scale)
		}
	}
}

// TestReplicaRepeatable checks that running a step again gives the same
// values, that Backward may run twice, and that Features agrees with
// Forward.
func TestReplicaRepeatable(t *testing.T) {
	f, w := loadVectors(t)
	x, g := f.Tensors["input"].F32, f.Tensors["upstream_grad"].F32
	r := newReplica(t, w, 4)
	step := func() (feat, proj []float32, grads [][]float32) {
		fe, pr, err := r.Forward(x, Train)
		if err != nil {
			t.Fatal(err)
		}
		feat, proj = slices.Clone(fe), slices.Clone(pr)
		if err := r.Backward(g); err != nil {
			t.Fatal(err)
		}
		for _, p := range r.Params() {
			grads = append(grads, slices.Clone(p.Grad))
		}
		return
	}
	f1, p1, g1 := step()
	f2, p2, g2 := step()
	if !slices.Equal(f1, f2) || !slices.Equal(p1, p2) {
		t.Error("a second forward pass gives other features or projections")
	}
	for i := range g1 {
		if !slices.Equal(g1[i], g2[i]) {
			t.Errorf("%s: a second step gives another gradient", r.Params()[i].Name)
		}
	}
	// Backward again with 2g: twice the gradients.
	g2x := slices.Clone(g)
	for i := range g2x {
		g2x[i] *= 2
	}
	if err := r.Backward(g2x); err != nil {
		t.Fatal(err)
	}
	for i, p := range r.Params() {
		for j := range p.Grad {
			if d := math.Abs(float64(p.Grad[j] - 2*g1[i][j])); d > 1e-6*(1+math.Abs(float64(p.Grad[j]))) {
				t.Fatalf("%s[%d]: Backward(2g) = %g, want 2×%g", p.Name, j, p.Grad[j], g1[i][j])
			}
		}
	}
	// Features only: the same features, and Backward from them the same
	// gradients.
	fe, err := r.Features(x, Train)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(fe, f1) {
		t.Error("Features differs from Forward's features")
	}
	if err := r.Backward(g); err != nil {
		t.Fatal(err)
	}
	for i, p := range r.Params() {
		if relErr(p.Grad, g1[i]) > 1e-6 {
			t.Errorf("%s: Backward after Features differs", p.Name)
		}
	}
}

// TestReplicaEval checks eval mode: with the running statistics set to the
// batch's (biased) statistics, an eval pass gives the training pass's
// outputs, and it leaves the running statistics alone.
func TestReplicaEval(t *testing.T) {
	f, w := loadVectors(t)
	x := f.Tensors["input"].F32
	r := newReplica(t, w, 4)
	fTrain, pTrain, err := r.Forward(x, Train)
	if err != nil {
		t.Fatal(err)
	}
	fTrain, pTrain = slices.Clone(fTrain), slices.Clone(pTrain)
	// Each BatchNorm op holds the statistics of its last run.
	for _, op := range batchNormOps(r) {
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
	// The weights' own buffers never change: the replica has copies.
	if e := relErr(w.Tensor("backbone.1.running_var").Data, f.Tensors["param.backbone.1.running_var"].F32); e != 0 {
		t.Error("a replica changed its Weights' running statistics")
	}
}

func batchNormOps(r *Replica) []*batchNormOp {
	var ops []*batchNormOp
	for _, n := range r.g.AllNodes() {
		if op, ok := n.Op().(*batchNormOp); ok {
			ops = append(ops, op)
		}
	}
	return ops
}

// TestReplicasConcurrent runs two replicas of one Weights at once (run it
// with -race) and checks they agree with a lone one.
func TestReplicasConcurrent(t *testing.T) {
	in := Input{C: 1, H: 12, W: 12}
	w := randomWeights(t, Config{}, in, 9)
	const n = 3
	x := randomSlice(10, n*in.Len(), 1)
	g := randomSlice(11, n*w.Out(), 1)
	ref := newReplica(t, w, n)
	_, wantP, err := ref.Forward(x, Train)
	if err != nil {
		t.Fatal(err)
	}
	if err := ref.Backward(g); err != nil {
		t.Fatal(err)
	}
	rs := []*Replica{newReplica(t, w, n), newReplica(t, w, n)}
	var wg sync.WaitGroup
	errs := make([]error, len(rs))
	for i, r := range rs {
		wg.Go(func() {
			for range 2 {
				if _, _, err := r.Forward(x, Train); err != nil {
					errs[i] = err
					return
				}
				if err := r.Backward(g); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if !slices.Equal(r.projection, wantP) {
			t.Error("a concurrent replica's projection differs")
		}
		for i, p := range r.Params() {
			if !slices.Equal(p.Grad, ref.Params()[i].Grad) {
				t.Errorf("%s: a concurrent replica's gradient differs", p.Name)
			}
		}
	}
}

func TestReplicaErrors(t *testing.T) {
	in := Input{C: 1, H: 4, W: 4}
	w := randomWeights(t, Config{}, in, 1)
	for _, n := range []int{0, -1, MaxShard + 1} {
		if _, err := NewReplica(w, n); err == nil {
			t.Errorf("NewReplica(n = %d) succeeded", n)
		}
	}
	r := newReplica(t, w, 1)
	if err := r.Backward(make([]float32, w.Out())); err == nil || !strings.Contains(err.Error(), "without a forward") {
		t.Errorf("Backward before Forward: %v", err)
	}
	if _, _, err := r.Forward(make([]float32, 3), Train); err == nil || !strings.Contains(err.Error(), "want 16") {
		t.Errorf("short input: %v", err)
	}
	if _, _, err := r.Forward(make([]float32, 16), Mode(7)); err == nil {
		t.Error("unknown mode accepted")
	}
	// One 4×4 image leaves one value per channel after two pools: no batch
	// variance in training mode, fine in eval mode.
	if _, _, err := r.Forward(randomSlice(1, 16, 1), Train); err == nil || !strings.Contains(err.Error(), "more than one value") {
		t.Errorf("training on one value per channel: %v", err)
	}
	if _, _, err := r.Forward(randomSlice(1, 16, 1), Eval); err != nil {
		t.Errorf("eval on one image: %v", err)
	}
	if err := r.Backward(make([]float32, 5)); err == nil {
		t.Error("short gradient accepted")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg   Config
		field string
	}{
		{Config{}, ""},
		{Config{Arch: ConvNetS, Hidden: 256, Out: 64}, ""},
		{Config{Arch: "resnet-50"}, "arch"},
		{Config{Hidden: -1}, "hidden"},
		{Config{Out: MaxWidth + 1}, "out"},
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
	for _, in := range []Input{{2, 28, 28}, {1, 3, 28}, {3, 28, MaxSide + 1}} {
		if err := in.Validate(); err == nil {
			t.Errorf("Input %v accepted", in)
		}
	}
	if _, err := NewWeights(Config{Out: -3}, Input{1, 28, 28}, nil); err == nil {
		t.Error("NewWeights accepted a bad config")
	}
}

func TestNewWeights(t *testing.T) {
	w := randomWeights(t, Config{Hidden: 64, Out: 32}, Input{C: 3, H: 32, W: 32}, 1)
	var names []string
	for _, p := range w.Params {
		names = append(names, p.Name)
	}
	want := []string{
		"backbone.0.weight", "backbone.1.weight", "backbone.1.bias",
		"backbone.4.weight", "backbone.5.weight", "backbone.5.bias",
		"backbone.8.weight", "backbone.9.weight", "backbone.9.bias",
		"head.0.weight", "head.0.bias", "head.2.weight", "head.2.bias",
	}
	if !slices.Equal(names, want) {
		t.Errorf("params %v, want %v", names, want)
	}
	for _, c := range []struct {
		name    string
		shape   []int
		noDecay bool
		bound   float64 // |v| ≤ bound; 0: all ones or zeros
	}{
		{"backbone.0.weight", []int{32, 3, 3, 3}, false, 1 / math.Sqrt(27)},
		{"backbone.4.weight", []int{64, 32, 3, 3}, false, 1 / math.Sqrt(288)},
		{"backbone.5.weight", []int{64}, true, 0},
		{"head.0.weight", []int{64, 128}, false, 1 / math.Sqrt(128)},
		{"head.2.bias", []int{32}, true, 1 / math.Sqrt(64)},
		{"backbone.9.running_var", []int{128}, false, 0},
	} {
		p := w.Tensor(c.name)
		if p == nil {
			t.Fatalf("no %s", c.name)
		}
		if !slices.Equal(p.Shape, c.shape) || p.NoDecay != c.noDecay {
			t.Errorf("%s: shape %v noDecay %v, want %v %v", c.name, p.Shape, p.NoDecay, c.shape, c.noDecay)
		}
		var m float64
		for _, v := range p.Data {
			m = math.Max(m, math.Abs(float64(v)))
		}
		if c.bound > 0 && (m > c.bound || m < 0.8*c.bound) {
			t.Errorf("%s: max |v| = %g, want just under %g", c.name, m, c.bound)
		}
	}
	if w.Tensor("nope") != nil {
		t.Error("Tensor(nope) is not nil")
	}
}

func TestWeightsSaveLoad(t *testing.T) {
	in := Input{C: 1, H: 28, W: 28}
	a := randomWeights(t, Config{}, in, 1)
	path := filepath.Join(t.TempDir(), "model.safetensors")
	if err := a.Save(path, map[string]string{"step": "7"}); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata["step"] != "7" || f.Metadata["arch"] != ConvNetS {
		t.Errorf("metadata %v", f.Metadata)
	}
	b := randomWeights(t, Config{}, in, 2)
	if err := b.LoadFile(path, ""); err != nil {
		t.Fatal(err)
	}
	for i, p := range a.all() {
		if !slices.Equal(p.Data, b.all()[i].Data) {
			t.Errorf("%s differs after Save and LoadFile", p.Name)
		}
	}
	// A file of another shape is refused, naming the tensor, and changes
	// nothing.
	c := randomWeights(t, Config{Out: 64}, in, 3)
	keep := slices.Clone(c.Tensor("head.0.weight").Data)
	if err := c.LoadFile(path, ""); err == nil || !strings.Contains(err.Error(), "head.2.weight") {
		t.Errorf("loading 128-wide weights into a 64-wide head: %v", err)
	}
	if !slices.Equal(c.Tensor("head.0.weight").Data, keep) {
		t.Error("a failed Load changed the weights")
	}
	// Clone and CopyFrom.
	d := a.Clone()
	d.Params[0].Data[0]++
	if a.Params[0].Data[0] == d.Params[0].Data[0] {
		t.Error("Clone shares memory")
	}
	if err := d.CopyFrom(a); err != nil || d.Params[0].Data[0] != a.Params[0].Data[0] {
		t.Errorf("CopyFrom: %v", err)
	}
	if err := CopyTensors(a.Buffers, a.Params); err == nil {
		t.Error("CopyTensors between unrelated tensors succeeded")
	}
}
