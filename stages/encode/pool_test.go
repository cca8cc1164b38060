package encode

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/contrastream/contrastream/pipeline"
)

// The pool tests use a tiny encoder: convnet-s with a 16→8 head on 1×8×8
// images, batches of 8.
var (
	poolCfg = Config{Hidden: 16, Out: 8}
	poolIn  = Input{C: 1, H: 8, W: 8}
)

const poolN = 8

// poolWeights returns random weights whose backbone BatchNorm shifts are
// moved away from 0, so that few ReLUs sit near their kink (for the finite
// differences).
func poolWeights(t testing.TB, seed uint64) *Weights {
	t.Helper()
	w := randomWeights(t, poolCfg, poolIn, seed)
	for _, p := range w.Params {
		if strings.HasPrefix(p.Name, "backbone") && strings.HasSuffix(p.Name, ".bias") {
			for i := range p.Data {
				p.Data[i] = 0.3
			}
		}
	}
	return w
}

func newPool(t testing.TB, w *Weights, cfg PoolConfig) *Pool {
	t.Helper()
	p, err := NewPool(w, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// poolBatch is a batch of n samples of shape in with random views.
func poolBatch(n int, in Input, seed uint64) *pipeline.Batch {
	b := &pipeline.Batch{C: in.C, H: in.H, W: in.W, Valid: n, Indices: make([]int64, n)}
	for i := range b.Indices {
		b.Indices[i] = int64(i)
	}
	b.Views[0] = randomSlice(seed, n*in.Len(), 1)
	b.Views[1] = randomSlice(seed+1, n*in.Len(), 1)
	return b
}

// poolGrads is a random dL/dZ for both views (the second unused by MoCo).
func poolGrads(n, d int, seed uint64) [2][]float32 {
	return [2][]float32{randomSlice(seed, n*d, 1), randomSlice(seed+1, n*d, 1)}
}

// stepResult is what one pool step gives: copies of the embeddings and of
// the summed parameter gradients.
type stepResult struct {
	z     [2][]float32
	grads [][]float32
}

// poolStep runs Encode, then Backward with g, copies the results and
// releases the step.
func poolStep(t testing.TB, p *Pool, b *pipeline.Batch, g [2][]float32) stepResult {
	t.Helper()
	e, err := p.Encode(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release()
	if e.N != b.Len() || e.D != p.Weights().Out() {
		t.Fatalf("Encoded is %d×%d, want %d×%d", e.N, e.D, b.Len(), p.Weights().Out())
	}
	var res stepResult
	res.z = [2][]float32{slices.Clone(e.Z[0]), slices.Clone(e.Z[1])}
	e.Grad = g
	if p.KeyParams() != nil {
		e.Grad[1] = nil // no gradient flows to MoCo's keys
	}
	if err := p.Backward(e); err != nil {
		t.Fatal(err)
	}
	for _, q := range p.Params() {
		res.grads = append(res.grads, slices.Clone(q.Grad))
	}
	return res
}

// poolObjective is sum(Z[0] ⊙ G[0]) (+ sum(Z[1] ⊙ G[1]) for two views)
// of one Encode, in float64, and the keys for MoCo.
func poolObjective(t testing.TB, p *Pool, b *pipeline.Batch, g [2][]float32) (obj float64, keys []float32) {
	t.Helper()
	e, err := p.Encode(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release()
	views := 2
	if p.KeyParams() != nil {
		views, keys = 1, slices.Clone(e.Z[1])
	}
	for v := range views {
		for i, z := range e.Z[v] {
			obj += float64(z) * float64(g[v][i])
		}
	}
	return obj, keys
}

// checkClose fails unless got is within tol of want, relative to
// max |want| (relErr).
func checkClose(t testing.TB, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	e := relErr(got, want)
	if e > tol || math.IsNaN(e) {
		t.Errorf("%s: relative error %.3g, over %.0e", what, e, tol)
	}
}

func checkResults(t testing.TB, got, want stepResult, params []*Tensor, tol float64) {
	t.Helper()
	checkClose(t, "Z[0]", got.z[0], want.z[0], tol)
	checkClose(t, "Z[1]", got.z[1], want.z[1], tol)
	var worst float64
	for k, p := range params {
		checkClose(t, "grad "+p.Name, got.grads[k], want.grads[k], tol)
		worst = max(worst, relErr(got.grads[k], want.grads[k]))
	}
	t.Logf("Z rel err %.2e / %.2e, worst gradient rel err %.2e", relErr(got.z[0], want.z[0]), relErr(got.z[1], want.z[1]), worst)
}

// separateGroups computes, with one fresh Replica per BatchNorm group of
// group images, what a pool with that group must give, whatever its
// shards: each group's embeddings from its own forward pass (BatchNorm
// statistics of that group alone), and the sum over groups of each
// replica's gradient of sum(Z_group ⊙ G_group). Groups are taken
// view-major over the views·n query images; MoCo's keys come from
// replicas of key on the same groups of view 2.
func separateGroups(t *testing.T, w, key *Weights, b *pipeline.Batch, g [2][]float32, group int) stepResult {
	t.Helper()
	n, img, d := b.Len(), b.C*b.H*b.W, w.Out()
	views := 2
	if key != nil {
		views = 1
	}
	// The query images and their gradients, view after view.
	var x, gq []float32
	for v := range views {
		x = append(x, b.Views[v]...)
		gq = append(gq, g[v]...)
	}
	res := stepResult{z: [2][]float32{make([]float32, n*d), make([]float32, n*d)}}
	var zq []float32
	for _, q := range w.Params {
		res.grads = append(res.grads, make([]float32, len(q.Data)))
	}
	for s := range views * n / group {
		r := newReplica(t, w, group)
		_, proj, err := r.Forward(x[s*group*img:(s+1)*group*img], Train)
		if err != nil {
			t.Fatal(err)
		}
		zq = append(zq, proj...)
		if err := r.Backward(gq[s*group*d : (s+1)*group*d]); err != nil {
			t.Fatal(err)
		}
		for k, q := range r.Params() {
			for j, v := range q.Grad {
				res.grads[k][j] += v
			}
		}
		if key != nil {
			kr := newReplica(t, key, group)
			_, proj, err := kr.Forward(b.Views[1][s*group*img:(s+1)*group*img], Train)
			if err != nil {
				t.Fatal(err)
			}
			copy(res.z[1][s*group*d:], proj)
		}
	}
	copy(res.z[0], zq[:n*d])
	if key == nil {
		copy(res.z[1], zq[n*d:])
	}
	return res
}

// TestPoolExact checks the decomposition: a pool's embeddings are those of
// separate replicas, one per BatchNorm group (by default the whole step),
// however many shards compute each group, and its summed gradient is the
// sum of theirs given the matching slices of G, i.e. the gradient of
// sum(Z ⊙ G) over the whole batch with BatchNorm statistics per group.
// Its running statistics are those of group 0's replica. On the old code,
// with BatchNorm per shard, every case with more than one shard in a group
// failed.
func TestPoolExact(t *testing.T) {
	cases := []struct {
		name         string
		shard, group int
		key          bool
	}{
		{"two-view/shard=16", 16, 0, false}, // one shard takes both views, concatenated
		{"two-view/shard=8", 8, 0, false},   // a view per shard
		{"two-view/shard=4", 4, 0, false},   // two shards per view
		{"two-view/shard=2", 2, 0, false},
		{"two-view/shard=2/group=4", 2, 4, false}, // ghost BatchNorm: groups of two shards
		{"two-view/shard=8/group=8", 8, 8, false}, // a group per view
		{"moco/shard=8", 8, 0, true},
		{"moco/shard=4", 4, 0, true},
		{"moco/shard=2", 2, 0, true},
		{"moco/shard=2/group=4", 2, 4, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := poolWeights(t, 11)
			p := newPool(t, w, PoolConfig{Batch: poolN, Shard: c.shard, BNGroup: c.group, KeyEncoder: c.key, Workers: 3})
			images := poolN * 2
			if c.key {
				images = poolN
			}
			if p.Shards() != images/c.shard {
				t.Fatalf("Shards() = %d, want %d", p.Shards(), images/c.shard)
			}
			group := c.group
			if group == 0 {
				group = images
			}
			if p.BNGroup() != group {
				t.Fatalf("BNGroup() = %d, want %d", p.BNGroup(), group)
			}
			if c.key {
				// The key encoder starts as a copy of w; make it differ, so
				// that the test sees which weights the keys come from.
				if kp, wp := p.KeyParams()[0].Data, w.Params[0].Data; &kp[0] == &wp[0] || !slices.Equal(kp, wp) {
					t.Fatal("the key encoder does not start as a copy of the weights")
				}
				for _, q := range p.KeyParams() {
					for j := range q.Data {
						q.Data[j] *= 0.9
					}
				}
			}
			b := poolBatch(poolN, poolIn, 21)
			g := poolGrads(poolN, w.Out(), 31)
			want := separateGroups(t, w, p.KeyWeights(), b, g, group)
			got := poolStep(t, p, b, g)
			checkResults(t, got, want, w.Params, 1e-5)
			// A second step gives the same: gradients are overwritten, not
			// accumulated, and the running statistics do not enter a
			// training pass.
			again := poolStep(t, p, b, g)
			checkResults(t, again, want, w.Params, 1e-5)

			// SyncBuffers hands the encoder's running statistics to the
			// Weights: two training passes over group 0 from the initial
			// ones, each moving them once.
			if err := p.SyncBuffers(); err != nil {
				t.Fatal(err)
			}
			r := newReplica(t, randomWeightsLike(t, w), group)
			x := slices.Concat(b.Views[0], b.Views[1])[:group*poolIn.Len()]
			for range 2 {
				if _, _, err := r.Forward(x, Train); err != nil {
					t.Fatal(err)
				}
			}
			for k, buf := range w.Buffers {
				checkClose(t, "buffer "+buf.Name, buf.Data, r.Buffers()[k].Data, 1e-5)
			}
			if c.key {
				kr := newReplica(t, randomWeightsLike(t, p.KeyWeights()), group)
				for range 2 {
					if _, _, err := kr.Forward(b.Views[1][:group*poolIn.Len()], Train); err != nil {
						t.Fatal(err)
					}
				}
				for k, buf := range p.KeyWeights().Buffers {
					checkClose(t, "key buffer "+buf.Name, buf.Data, kr.Buffers()[k].Data, 1e-5)
				}
			}
		})
	}
}

// randomWeightsLike returns a copy of w's parameters with freshly
// initialised running statistics (those NewWeights gives).
func randomWeightsLike(t testing.TB, w *Weights) *Weights {
	t.Helper()
	c := poolWeights(t, 99)
	if err := CopyTensors(c.Params, w.Params); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPoolOneShardIsTheReplica: a pool of one shard per group computes
// exactly what a lone Replica of that size does, bit for bit: the group
// code adds nothing to the arithmetic of a group of one shard.
func TestPoolOneShardIsTheReplica(t *testing.T) {
	for _, key := range []bool{false, true} {
		t.Run(fmt.Sprintf("key=%v", key), func(t *testing.T) {
			w := poolWeights(t, 12)
			shard := 2 * poolN
			if key {
				shard = poolN
			}
			p := newPool(t, w, PoolConfig{Batch: poolN, Shard: shard, KeyEncoder: key})
			b := poolBatch(poolN, poolIn, 22)
			g := poolGrads(poolN, w.Out(), 32)
			want := separateGroups(t, w, p.KeyWeights(), b, g, shard)
			got := poolStep(t, p, b, g)
			for v := range 2 {
				if !sameBits(got.z[v], want.z[v]) {
					t.Errorf("Z[%d] differs from the lone replica's", v)
				}
			}
			for k, q := range w.Params {
				if !sameBits(got.grads[k], want.grads[k]) {
					t.Errorf("grad %s differs from the lone replica's", q.Name)
				}
			}
		})
	}
}

// TestPoolFiniteDifferences checks the pool's summed gradient against
// central differences of sum(Z ⊙ G) recomputed by Encode, for a few
// elements of every weight, with BatchNorm over the whole step computed by
// shards of 2 images (so the gradient crosses the group's barriers). For
// MoCo it also checks that the keys do not depend on the query encoder's
// weights.
//
// A tiny ReLU network with BatchNorm over a few images has kinks
// (a ReLU or a max-pool switching) close to many points, where a central
// difference is the mean of the slopes on either side, not the gradient
// at the point (seen here: the gradient agrees with float64 differences at
// ε = 1e-7 to 6 digits, float32 ones at ε = 1e-3 differ by up to 3% of
// max |grad|). So an element whose difference misses the gradient is
// checked against the mean of the pool's gradient along the segment
// instead (midpoint rule), which a central difference equals across a kink.
func TestPoolFiniteDifferences(t *testing.T) {
	for _, key := range []bool{false, true} {
		t.Run(fmt.Sprintf("key=%v", key), func(t *testing.T) {
			w := poolWeights(t, 15)
			p := newPool(t, w, PoolConfig{Batch: poolN, Shard: 2, KeyEncoder: key})
			b := poolBatch(poolN, poolIn, 25)
			g := poolGrads(poolN, w.Out(), 35)
			res := poolStep(t, p, b, g)
			_, keys0 := poolObjective(t, p, b, g)
			const (
				eps    = 1e-3
				tol    = 2e-2 // of max |grad|
				points = 8    // of the midpoint rule
			)
			for k, q := range p.Params() {
				if !strings.HasSuffix(q.Name, "weight") {
					continue
				}
				grad := res.grads[k]
				var scale, worst float64
				for _, v := range grad {
					scale = max(scale, math.Abs(float64(v)))
				}
				for _, j := range []int{0, len(q.Data) / 2, len(q.Data) - 1} {
					keep := q.Data[j]
					q.Data[j] = keep + eps
					up, keysUp := poolObjective(t, p, b, g)
					hi := q.Data[j]
					q.Data[j] = keep - eps
					down, _ := poolObjective(t, p, b, g)
					lo := q.Data[j]
					q.Data[j] = keep
					if key && !slices.Equal(keysUp, keys0) {
						t.Fatalf("%s[%d]: the keys changed with the query encoder's weights", q.Name, j)
					}
					fd := (up - down) / float64(hi-lo)
					diff := math.Abs(fd - float64(grad[j]))
					if diff > tol*scale {
						var mean float64
						for i := range points {
							q.Data[j] = lo + (hi-lo)*(float32(i)+0.5)/points
							mean += float64(poolStep(t, p, b, g).grads[k][j]) / points
						}
						q.Data[j] = keep
						t.Logf("%s[%d]: difference %.5g, gradient %.5g at the point, mean %.5g along the segment", q.Name, j, fd, grad[j], mean)
						diff = math.Abs(fd - mean)
					}
					worst = max(worst, diff)
				}
				t.Logf("%-18s max |analytic − numeric| %.2e of max |grad| %.2e", q.Name, worst, scale)
				if worst > tol*scale || math.IsNaN(worst) {
					t.Errorf("%s: gradient off by %.3g (max |grad| %.3g)", q.Name, worst, scale)
				}
			}
		})
	}
}

// TestPoolErrors checks the errors of NewPool, Encode and Backward.
func TestPoolErrors(t *testing.T) {
	w := poolWeights(t, 16)
	for _, c := range []struct {
		cfg  PoolConfig
		want []string
	}{
		{PoolConfig{Batch: 8, Shard: 3, KeyEncoder: true}, []string{"shard: 3 images per shard", "batch of 8", "e.g. 2 or 4"}},
		{PoolConfig{Batch: 8, Shard: 3}, []string{"shard: 3 images", "e.g. 2 or 4", "or 16 (one shard of both views)"}},
		{PoolConfig{Batch: 8, Shard: 12}, []string{"shard: 12 images", "e.g. 8", "or 16"}},
		{PoolConfig{Batch: 9, Shard: 6}, []string{"shard: 6 images", "e.g. 3 or 9"}}, // 6 divides 18, yet a shard would straddle the views
		{PoolConfig{Batch: 8, Shard: MaxShard + 1}, []string{"shard: must be in [1, 65536]"}},
		{PoolConfig{Batch: 8, Shard: -1}, []string{"shard: must be in"}},
		{PoolConfig{Batch: 8, Workers: -1}, []string{"workers: must be in [1, 1024] (0: GOMAXPROCS), got -1"}},
		{PoolConfig{Batch: 8, Workers: MaxWorkers + 1}, []string{"workers: must be in"}},
		{PoolConfig{Batch: 8, Shard: 4, BNGroup: 6}, []string{"bn_group: 6 images per BatchNorm group", "multiple of the shard (4 images)", "e.g. 4 or 8"}},
		{PoolConfig{Batch: 8, Shard: 2, BNGroup: 6}, []string{"bn_group: 6", "divides the 16 images", "e.g. 4 or 8"}},
		{PoolConfig{Batch: 8, Shard: 2, BNGroup: 32}, []string{"bn_group: 32", "e.g. 16"}},
		{PoolConfig{Batch: 8, Shard: 2, BNGroup: -2}, []string{"bn_group: -2"}},
		{PoolConfig{Batch: 8, Views: 3}, []string{"3 views, want 1 or 2"}},
		{PoolConfig{Batch: 8, Views: 2, KeyEncoder: true}, []string{"Views must be 1"}},
		{PoolConfig{Batch: 8, Freeze: []string{"head.9."}}, []string{`freeze: "head.9." names no parameter`, "head.0.weight"}},
		{PoolConfig{Batch: 8, Freeze: []string{"backbone.", "head."}}, []string{"freeze: freezes every parameter"}},
		{PoolConfig{Batch: 0}, []string{"batch size 0"}},
		{PoolConfig{Batch: -8, KeyEncoder: true}, []string{"batch size -8"}},
	} {
		p, err := NewPool(w, c.cfg)
		if err == nil {
			p.Close()
			t.Errorf("NewPool(%+v) succeeded", c.cfg)
			continue
		}
		for _, s := range c.want {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("NewPool(%+v): error %q does not say %q", c.cfg, err, s)
			}
		}
		t.Logf("NewPool(%+v): %v", c.cfg, err)
	}

	for _, key := range []bool{false, true} {
		p := newPool(t, w, PoolConfig{Batch: poolN, Shard: 4, KeyEncoder: key})
		ctx := context.Background()
		bad := func(what string, b *pipeline.Batch, want ...string) {
			t.Helper()
			e, err := p.Encode(ctx, b)
			if err == nil {
				p.Release()
				t.Errorf("key=%v, %s: Encode succeeded (Z %d values)", key, what, len(e.Z[0]))
				return
			}
			for _, s := range want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("key=%v, %s: error %q does not say %q", key, what, err, s)
				}
			}
			t.Logf("key=%v, %s: %v", key, what, err)
		}
		bad("batch of 4", poolBatch(4, poolIn, 1), "4 samples", "8")
		bad("12×12 views", poolBatch(poolN, Input{C: 1, H: 12, W: 12}, 1), "1×12×12", "1×8×8")
		bad("3 channels", poolBatch(poolN, Input{C: 3, H: 8, W: 8}, 1), "3×8×8")
		short := poolBatch(poolN, poolIn, 1)
		short.Views[1] = short.Views[1][:len(short.Views[1])-1]
		bad("short view 2", short, "view 2", fmt.Sprint(poolN*poolIn.Len()))
		noView := poolBatch(poolN, poolIn, 1)
		noView.Views[1] = nil
		bad("no view 2", noView, "view 2")
		long := poolBatch(poolN, poolIn, 1)
		long.Views[0] = append(long.Views[0], 0)
		bad("long view 1", long, "view 1")

		// A rejected batch does not take the step: a good one runs now.
		e, err := p.Encode(ctx, poolBatch(poolN, poolIn, 2))
		if err != nil {
			t.Fatalf("key=%v: Encode after rejected batches: %v", key, err)
		}
		e.Grad = [2][]float32{make([]float32, poolN*w.Out()-1), make([]float32, poolN*w.Out())}
		if err := p.Backward(e); err == nil || !strings.Contains(err.Error(), "view 1") {
			t.Errorf("key=%v: Backward with a short gradient: %v", key, err)
		}
		if !key {
			e.Grad = [2][]float32{make([]float32, poolN*w.Out()), nil}
			if err := p.Backward(e); err == nil || !strings.Contains(err.Error(), "view 2") {
				t.Errorf("two views: Backward without view 2's gradient: %v", err)
			}
		}
		p.Release()
	}
}

// TestDefaultShard: the default shard size depends on the batch size
// alone (the old default replica count followed GOMAXPROCS), and a pool
// takes it whatever GOMAXPROCS is.
func TestDefaultShard(t *testing.T) {
	for _, c := range []struct{ batch, want int }{
		{1, 1}, {7, 7}, {8, 8}, {16, 16}, {24, 24}, {32, 32}, {48, 24}, {64, 32}, {96, 32}, {100, 25},
		{256, 32}, {1000, 40}, {1024, 32}, {67, 67}, {134, 67},
	} {
		if got := DefaultShard(c.batch); got != c.want {
			t.Errorf("DefaultShard(%d) = %d, want %d", c.batch, got, c.want)
		}
	}
	w := poolWeights(t, 17)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, procs := range []int{1, 2, 3, 8} {
		runtime.GOMAXPROCS(procs)
		for _, key := range []bool{false, true} {
			p := newPool(t, w, PoolConfig{Batch: 96, KeyEncoder: key})
			views := 2
			if key {
				views = 1
			}
			if p.ShardSize() != 32 || p.Shards() != 3*views || p.Workers() != procs || p.BNGroup() != 96*views {
				t.Errorf("GOMAXPROCS %d, key=%v: %d shards of %d, %d workers, groups of %d; want %d of 32, %d workers, groups of %d",
					procs, key, p.Shards(), p.ShardSize(), p.Workers(), p.BNGroup(), 3*views, procs, 96*views)
			}
			p.Close()
		}
	}
}

// TestPoolRelease checks that Encode waits for the previous step's
// Release, and gives up when its context ends.
func TestPoolRelease(t *testing.T) {
	w := poolWeights(t, 18)
	p := newPool(t, w, PoolConfig{Batch: poolN, Shard: 4, KeyEncoder: true})
	b := poolBatch(poolN, poolIn, 3)
	if _, err := p.Encode(context.Background(), b); err != nil {
		t.Fatal(err)
	}

	// Without Release, an Encode with a deadline gives up, and one with a
	// cancelled context at once.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := p.Encode(ctx, b); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Encode before Release, deadline passed: %v, want DeadlineExceeded", err)
	}
	done, stop := context.WithCancel(context.Background())
	stop()
	if _, err := p.Encode(done, b); !errors.Is(err, context.Canceled) {
		t.Errorf("Encode before Release, cancelled: %v, want Canceled", err)
	}

	// A second Encode blocks until Release.
	type result struct {
		e   *pipeline.Encoded
		err error
	}
	ch := make(chan result, 1)
	go func() {
		e, err := p.Encode(context.Background(), b)
		ch <- result{e, err}
	}()
	select {
	case r := <-ch:
		t.Fatalf("Encode returned before Release: %v", r.err)
	case <-time.After(50 * time.Millisecond):
	}
	p.Release()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatal(r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Encode still blocked 10 s after Release")
	}
	// A second Release of the same step is harmless; the step after it
	// runs once.
	p.Release()
	p.Release()
	if _, err := p.Encode(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel2()
	if _, err := p.Encode(ctx2, b); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("double Release let two steps run: %v", err)
	}
	p.Release()
}

// TestPoolShardFailure: a shard that fails or panics, in the forward or
// the backward pass, breaks its BatchNorm groups' barriers, so that the
// other shards return instead of waiting for it (with fewer workers than
// shards too); Encode or Backward returns the failure, no goroutine is
// left behind, and the next step runs as on a fresh pool.
func TestPoolShardFailure(t *testing.T) {
	b := poolBatch(poolN, poolIn, 26)
	g := poolGrads(poolN, poolCfg.withDefaults().Out, 36)
	want := poolStep(t, newPool(t, poolWeights(t, 19), PoolConfig{Batch: poolN, Shard: 2}), b, g)
	for _, key := range []bool{false, true} {
		for _, workers := range []int{1, 3, 8} {
			for _, pass := range []string{"forward", "backward"} {
				for _, bad := range []int{0, 3} {
					for _, how := range []string{"panic", "error"} {
						name := fmt.Sprintf("key=%v/workers=%d/%s/shard%d/%s", key, workers, pass, bad, how)
						t.Run(name, func(t *testing.T) {
							before := runtime.NumGoroutine()
							p := newPool(t, poolWeights(t, 19), PoolConfig{Batch: poolN, Shard: 2, KeyEncoder: key, Workers: workers})
							fail := errors.New("shard failed on purpose")
							p.beforeShard = func(ps string, i int) error {
								if ps != pass || i != bad {
									return nil
								}
								if how == "panic" {
									panic(fail)
								}
								return fail
							}
							done := make(chan error, 1)
							go func() {
								e, err := p.Encode(context.Background(), b)
								if err != nil || pass == "forward" {
									if err == nil {
										p.Release()
									}
									done <- err
									return
								}
								e.Grad = g
								if key {
									e.Grad[1] = nil
								}
								err = p.Backward(e)
								p.Release()
								done <- err
							}()
							select {
							case err := <-done:
								if err == nil {
									t.Fatal("no error")
								}
								if !errors.Is(err, fail) || errors.Is(err, errBroken) {
									t.Errorf("error %q is not the shard's failure", err)
								}
								t.Logf("%.200s", err)
							case <-time.After(20 * time.Second):
								t.Fatal("the pass still runs 20 s after a shard failed: the others wait at a barrier")
							}
							p.beforeShard = nil
							if !key {
								if got := poolStep(t, p, b, g); !sameBits(got.z[0], want.z[0]) || !sameBits(got.grads[0], want.grads[0]) {
									t.Error("the step after a failed one differs from a fresh pool's")
								}
							} else {
								poolStep(t, p, b, g)
							}
							p.Close()
							deadline := time.Now().Add(5 * time.Second)
							for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
								time.Sleep(10 * time.Millisecond)
							}
							if n := runtime.NumGoroutine(); n > before {
								t.Errorf("%d goroutines, %d before", n, before)
							}
						})
					}
				}
			}
		}
	}
}

// TestPoolOneView: a pool of one view without a key encoder (a one-view
// method with gradient, such as a fine-tune) encodes view 1 alone, with
// BatchNorm over its N images across the shards, and leaves view 2 unread.
func TestPoolOneView(t *testing.T) {
	w := poolWeights(t, 20)
	p := newPool(t, w, PoolConfig{Batch: poolN, Views: 1, Shard: 2, Workers: 2})
	if p.Views() != 1 || p.Shards() != poolN/2 || p.BNGroup() != poolN || p.KeyParams() != nil {
		t.Fatalf("%d views, %d shards, groups of %d, key params %v; want 1, %d, %d, none", p.Views(), p.Shards(), p.BNGroup(), p.KeyParams(), poolN/2, poolN)
	}
	b := poolBatch(poolN, poolIn, 27)
	b.Views[1] = nil
	g := poolGrads(poolN, w.Out(), 37)
	e, err := p.Encode(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if e.Z[1] != nil {
		t.Errorf("Z[1] has %d values, want none", len(e.Z[1]))
	}
	z := slices.Clone(e.Z[0])
	e.Grad = [2][]float32{g[0], nil}
	if err := p.Backward(e); err != nil {
		t.Fatal(err)
	}
	p.Release()

	r := newReplica(t, randomWeightsLike(t, w), poolN)
	_, proj, err := r.Forward(b.Views[0], Train)
	if err != nil {
		t.Fatal(err)
	}
	checkClose(t, "Z[0]", z, proj, 1e-6)
	if err := r.Backward(g[0]); err != nil {
		t.Fatal(err)
	}
	for k, q := range p.Params() {
		checkClose(t, "grad "+q.Name, q.Grad, r.Params()[k].Grad, 1e-5)
	}
	if err := p.SyncBuffers(); err != nil {
		t.Fatal(err)
	}
	for k, buf := range w.Buffers {
		checkClose(t, "buffer "+buf.Name, buf.Data, r.Buffers()[k].Data, 1e-6)
	}
}

// TestPoolFreeze: a pool with frozen parameters hands the optimizer the
// others (their gradients the bytes of an unfrozen pool's), and its key
// encoder's parameters pair with them; without Freeze every parameter
// trains.
func TestPoolFreeze(t *testing.T) {
	w := poolWeights(t, 21)
	all := newPool(t, w, PoolConfig{Batch: poolN, Views: 1, Shard: 2, Workers: 2})
	frozen := newPool(t, w, PoolConfig{Batch: poolN, Views: 1, Shard: 2, Workers: 2, Freeze: []string{"head.0."}})
	if len(all.Params()) != len(w.Params) {
		t.Fatalf("without Freeze %d of %d parameters train", len(all.Params()), len(w.Params))
	}
	b := poolBatch(poolN, poolIn, 28)
	g := poolGrads(poolN, w.Out(), 38)
	grads := func(p *Pool) map[string][]float32 {
		e, err := p.Encode(context.Background(), b)
		if err != nil {
			t.Fatal(err)
		}
		e.Grad = [2][]float32{g[0], nil}
		if err := p.Backward(e); err != nil {
			t.Fatal(err)
		}
		p.Release()
		m := map[string][]float32{}
		for _, q := range p.Params() {
			m[q.Name] = slices.Clone(q.Grad)
		}
		return m
	}
	want, got := grads(all), grads(frozen)
	if len(got) != len(want)-2 {
		t.Errorf("%d parameters train with head.0 frozen, want %d", len(got), len(want)-2)
	}
	for name, gr := range want {
		fg, ok := got[name]
		if strings.HasPrefix(name, "head.0.") {
			if ok {
				t.Errorf("frozen %s is among the parameters", name)
			}
			continue
		}
		if !ok || !sameBits(fg, gr) {
			t.Errorf("%s: the frozen pool's gradient differs from the unfrozen one's", name)
		}
	}
	key := newPool(t, w, PoolConfig{Batch: poolN, KeyEncoder: true, Shard: 4, Freeze: []string{"head.0."}})
	if len(key.KeyParams()) != len(key.Params()) {
		t.Fatalf("%d key params for %d params", len(key.KeyParams()), len(key.Params()))
	}
	for i, q := range key.Params() {
		if key.KeyParams()[i].Name != q.Name {
			t.Errorf("key param %d is %s, param %s", i, key.KeyParams()[i].Name, q.Name)
		}
	}
}

// The encode stage's views and freeze: impossible values are errors that
// name the field.
func TestStageConfigViewsAndFreeze(t *testing.T) {
	for _, c := range []struct {
		cfg   StageConfig
		field string
	}{
		{StageConfig{Views: 1}, ""},
		{StageConfig{Views: 2}, ""},
		{StageConfig{Views: 1, KeyEncoder: true}, ""},
		{StageConfig{Freeze: []string{"head.0."}}, ""},
		{StageConfig{Views: 3}, "views"},
		{StageConfig{Views: -1}, "views"},
		{StageConfig{Views: 2, KeyEncoder: true}, "views"},
		{StageConfig{Freeze: []string{"head.0.", ""}}, "freeze"},
	} {
		err := c.cfg.Validate()
		var fe *pipeline.FieldError
		if c.field == "" && err != nil || c.field != "" && (!errors.As(err, &fe) || fe.Field != c.field) {
			t.Errorf("%+v: %v, want an error for %q", c.cfg, err, c.field)
		}
	}
	if got := (StageConfig{Views: 1, Freeze: []string{"x"}}).PoolConfig(8); got.Views != 1 || !slices.Equal(got.Freeze, []string{"x"}) {
		t.Errorf("PoolConfig %+v lost views or freeze", got)
	}
}
