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

func newPool(t testing.TB, w *Weights, n, replicas int, key bool) *Pool {
	t.Helper()
	p, err := NewPool(w, n, replicas, key)
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

// separateShards computes, with one fresh Replica per shard, what a pool
// of the given replica count must give: each shard's embeddings from its
// own forward pass (BatchNorm statistics of that shard alone), and the
// sum over shards of each replica's gradient of sum(Z_shard ⊙ G_shard).
// Shards are taken view-major over the views·n query images; MoCo's keys
// come from replicas of key on the same shards of view 2.
func separateShards(t *testing.T, w, key *Weights, b *pipeline.Batch, g [2][]float32, replicas int) stepResult {
	t.Helper()
	n, img, d := b.Len(), b.C*b.H*b.W, w.Out()
	views := 2
	if key != nil {
		views = 1
	}
	shard := views * n / replicas
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
	for s := range replicas {
		r := newReplica(t, w, shard)
		_, proj, err := r.Forward(x[s*shard*img:(s+1)*shard*img], Train)
		if err != nil {
			t.Fatal(err)
		}
		zq = append(zq, proj...)
		if err := r.Backward(gq[s*shard*d : (s+1)*shard*d]); err != nil {
			t.Fatal(err)
		}
		for k, q := range r.Params() {
			for j, v := range q.Grad {
				res.grads[k][j] += v
			}
		}
		if key != nil {
			kr := newReplica(t, key, shard)
			_, proj, err := kr.Forward(b.Views[1][s*shard*img:(s+1)*shard*img], Train)
			if err != nil {
				t.Fatal(err)
			}
			copy(res.z[1][s*shard*d:], proj)
		}
	}
	copy(res.z[0], zq[:n*d])
	if key == nil {
		copy(res.z[1], zq[n*d:])
	}
	return res
}

// TestPoolExact checks the decomposition: a pool's embeddings are those of
// separate replicas, one per shard, and its summed gradient is the sum of
// theirs given the matching slices of G, i.e. the gradient of
// sum(Z ⊙ G) over the whole batch with BatchNorm statistics per shard.
func TestPoolExact(t *testing.T) {
	cases := []struct {
		name     string
		replicas int
		key      bool
	}{
		{"two-view/R=1", 1, false}, // one replica takes both views, concatenated
		{"two-view/R=2", 2, false}, // a view per replica
		{"two-view/R=4", 4, false}, // two shards per view
		{"moco/R=1", 1, true},
		{"moco/R=2", 2, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := poolWeights(t, 11)
			p := newPool(t, w, poolN, c.replicas, c.key)
			if p.Replicas() != c.replicas {
				t.Fatalf("Replicas() = %d, want %d", p.Replicas(), c.replicas)
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
			want := separateShards(t, w, p.KeyWeights(), b, g, c.replicas)
			got := poolStep(t, p, b, g)
			checkResults(t, got, want, w.Params, 1e-5)
			// A second step gives the same: gradients are overwritten, not
			// accumulated, and the running statistics do not enter a
			// training pass.
			again := poolStep(t, p, b, g)
			checkResults(t, again, want, w.Params, 1e-5)

			// SyncBuffers hands replica 0's running statistics to the
			// Weights: two training passes on shard 0 from the initial ones.
			if err := p.SyncBuffers(); err != nil {
				t.Fatal(err)
			}
			shard := poolN * 2 / c.replicas
			if c.key {
				shard = poolN / c.replicas
			}
			r := newReplica(t, randomWeightsLike(t, w), shard)
			x := slices.Concat(b.Views[0], b.Views[1])[:shard*poolIn.Len()]
			for range 2 {
				if _, _, err := r.Forward(x, Train); err != nil {
					t.Fatal(err)
				}
			}
			for k, buf := range w.Buffers {
				checkClose(t, "buffer "+buf.Name, buf.Data, r.Buffers()[k].Data, 1e-5)
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

// TestPoolReplicaCountSameStatistics checks R = 1 against R = 2 on batches
// whose shards have the same BatchNorm statistics as the whole batch
// (every shard a copy of the others): then the pool must give the same
// embeddings and gradients whatever R, i.e. R = 2 equals one graph over the
// whole batch.
func TestPoolReplicaCountSameStatistics(t *testing.T) {
	t.Run("two-view", func(t *testing.T) {
		// R = 1 runs both views as one shard of 2n images, R = 2 a view per
		// replica: view 2 is a copy of view 1. G differs between the views.
		w := poolWeights(t, 12)
		b := poolBatch(poolN, poolIn, 22)
		b.Views[1] = slices.Clone(b.Views[0])
		g := poolGrads(poolN, w.Out(), 32)
		one := poolStep(t, newPool(t, w, poolN, 1, false), b, g)
		two := poolStep(t, newPool(t, w, poolN, 2, false), b, g)
		checkResults(t, two, one, w.Params, 1e-4)
	})
	t.Run("moco", func(t *testing.T) {
		// Shards of 4: samples 4..7 are copies of 0..3, in both views.
		w := poolWeights(t, 13)
		b := poolBatch(poolN, poolIn, 23)
		half := poolN / 2 * poolIn.Len()
		for v := range 2 {
			copy(b.Views[v][half:], b.Views[v][:half])
		}
		g := poolGrads(poolN, w.Out(), 33)
		one := poolStep(t, newPool(t, w, poolN, 1, true), b, g)
		two := poolStep(t, newPool(t, w, poolN, 2, true), b, g)
		checkResults(t, two, one, w.Params, 1e-4)
	})
}

// TestPoolBatchNormPerShard shows that BatchNorm statistics are per shard:
// on an ordinary batch, R = 1 and R = 2 give different embeddings (as
// MoCo's shuffled BN wants), while each is exact for its own shards
// (TestPoolExact).
func TestPoolBatchNormPerShard(t *testing.T) {
	for _, key := range []bool{false, true} {
		t.Run(fmt.Sprintf("key=%v", key), func(t *testing.T) {
			w := poolWeights(t, 14)
			b := poolBatch(poolN, poolIn, 24)
			g := poolGrads(poolN, w.Out(), 34)
			one := poolStep(t, newPool(t, w, poolN, 1, key), b, g)
			two := poolStep(t, newPool(t, w, poolN, 2, key), b, g)
			for v := range 2 {
				e := relErr(two.z[v], one.z[v])
				t.Logf("Z[%d]: R=2 differs from R=1 by %.3g relative", v, e)
				if e < 1e-3 {
					t.Errorf("Z[%d]: R = 1 and R = 2 agree within %.3g; BatchNorm should normalise each shard with its own statistics", v, e)
				}
			}
		})
	}
}

// TestPoolFiniteDifferences checks the pool's summed gradient against
// central differences of sum(Z ⊙ G) recomputed by Encode, for a few
// elements of every weight, with R = 2. For MoCo it also checks that the
// keys do not depend on the query encoder's weights.
//
// A tiny ReLU network with BatchNorm over shards of 4 images has kinks
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
			p := newPool(t, w, poolN, 2, key)
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
		n, replicas int
		key         bool
		want        []string
	}{
		{8, 3, true, []string{"3 replicas", "choose replicas = a divisor of the batch size 8", "e.g. 2 or 4"}},
		{8, 3, false, []string{"3 replicas", "choose replicas = 1 or twice a divisor of the batch size 8", "e.g. 2 or 4"}},
		{8, 6, false, []string{"6 replicas", "choose", "e.g. 4 or 8"}},
		{9, 3, false, []string{"3 replicas", "choose", "e.g. 2 or 6"}}, // 3 divides 9, yet a shard of 6 straddles the views
		{8, 32, false, []string{"32 replicas", "choose", "e.g. 16"}},
		{8, MaxReplicas + 1, true, []string{"257 replicas", "at most 256"}},
		{0, 1, false, []string{"batch size 0"}},
		{-8, 0, true, []string{"batch size -8"}},
	} {
		p, err := NewPool(w, c.n, c.replicas, c.key)
		if err == nil {
			p.Close()
			t.Errorf("NewPool(n=%d, replicas=%d, key=%v) succeeded", c.n, c.replicas, c.key)
			continue
		}
		for _, s := range c.want {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("NewPool(n=%d, replicas=%d, key=%v): error %q does not say %q", c.n, c.replicas, c.key, err, s)
			}
		}
		t.Logf("NewPool(n=%d, replicas=%d, key=%v): %v", c.n, c.replicas, c.key, err)
	}

	for _, key := range []bool{false, true} {
		p := newPool(t, w, poolN, 2, key)
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

// TestPoolDefaultReplicas checks that replicas = 0 picks the largest count
// up to GOMAXPROCS that splits the batch into shards within a view.
func TestPoolDefaultReplicas(t *testing.T) {
	w := poolWeights(t, 17)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, c := range []struct {
		procs, n int
		key      bool
		want     int
	}{
		{2, 8, false, 2},
		{2, 8, true, 2},
		{2, 7, true, 1},
		{2, 7, false, 2},  // a view per replica
		{3, 12, false, 2}, // 3 would put a shard of 8 across the views
		{3, 12, true, 3},
		{4, 6, false, 4}, // shards of 3
		{4, 6, true, 3},
		{1, 8, false, 1},
	} {
		runtime.GOMAXPROCS(c.procs)
		p, err := NewPool(w, c.n, 0, c.key)
		if err != nil {
			t.Errorf("GOMAXPROCS %d, n=%d, key=%v: %v", c.procs, c.n, c.key, err)
			continue
		}
		if p.Replicas() != c.want {
			t.Errorf("GOMAXPROCS %d, n=%d, key=%v: %d replicas, want %d", c.procs, c.n, c.key, p.Replicas(), c.want)
		}
		p.Close()
	}
}

// TestPoolRelease checks that Encode waits for the previous step's
// Release, and gives up when its context ends.
func TestPoolRelease(t *testing.T) {
	w := poolWeights(t, 18)
	p := newPool(t, w, poolN, 2, true)
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
