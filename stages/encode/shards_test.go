package encode

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
)

// The tests of this file check "the flow fixes the math; cores and workers
// only the speed": a Pool's results depend on its batch, views, shard size
// and BatchNorm group, never on Workers or GOMAXPROCS.

// shardCase is an encoder and a pool config to run it with.
type shardCase struct {
	name string
	cfg  Config
	in   Input
	pool PoolConfig
}

// shardCases are convnet-s with and without a key encoder, a small
// ResNet-18 and a tiny ViT, each at the default shard size (which the old
// code chose from GOMAXPROCS) and at shards of 2 images (several shards
// per BatchNorm group).
func shardCases() []shardCase {
	var cs []shardCase
	for _, e := range []struct {
		name string
		cfg  Config
		in   Input
		key  bool
	}{
		{"convnet-s/moco", poolCfg, poolIn, true},
		{"convnet-s/two-view", poolCfg, poolIn, false},
		{"resnet18/two-view", Config{Arch: ResNet18, Width: 4, Hidden: 16, Out: 8}, Input{C: 3, H: 8, W: 8}, false},
		{"resnet18/moco", Config{Arch: ResNet18, Width: 4, Hidden: 16, Out: 8}, Input{C: 3, H: 8, W: 8}, true},
		{"vit/moco", Config{Arch: ViT, Patch: 4, Width: 16, Heads: 2, Depth: 1, MLP: 32, Hidden: 16, Out: 8}, poolIn, true},
		{"vit/two-view", Config{Arch: ViT, Patch: 4, Width: 16, Heads: 2, Depth: 1, MLP: 32, Hidden: 16, Out: 8}, poolIn, false},
	} {
		for _, shard := range []int{0, 2} {
			cs = append(cs, shardCase{
				name: fmt.Sprintf("%s/shard=%d", e.name, shard),
				cfg:  e.cfg, in: e.in,
				pool: PoolConfig{Batch: poolN, KeyEncoder: e.key, Shard: shard},
			})
		}
	}
	return cs
}

// twoSteps is what twoStepsOf records: after each of two steps, the
// embeddings, the summed gradients and the running statistics of both
// encoders.
type twoSteps [2]struct {
	z       [2][]float32
	grads   [][]float32
	buffers [][]float32
}

// twoStepsOf runs two training steps of a fresh pool of c with workers
// workers on the same batch, with a fake optimizer in between (SGD on the
// encoder, a momentum update of the key encoder), and records them.
func twoStepsOf(t *testing.T, c shardCase, workers int) twoSteps {
	t.Helper()
	w, err := NewWeights(c.cfg, c.in, rand.New(rand.NewPCG(7, 7)))
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.pool
	cfg.Workers = workers
	p := newPool(t, w, cfg)
	b := poolBatch(poolN, c.in, 41)
	g := poolGrads(poolN, w.Out(), 51)
	var res twoSteps
	for step := range res {
		r := poolStep(t, p, b, g)
		res[step].z, res[step].grads = r.z, r.grads
		if err := p.SyncBuffers(); err != nil {
			t.Fatal(err)
		}
		for _, ws := range []*Weights{w, p.KeyWeights()} {
			if ws == nil {
				continue
			}
			for _, buf := range ws.Buffers {
				res[step].buffers = append(res[step].buffers, slices.Clone(buf.Data))
			}
		}
		for k, q := range p.Params() {
			for j := range q.Data {
				q.Data[j] -= 0.05 * q.Grad[j]
			}
			if kp := p.KeyParams(); kp != nil {
				for j := range kp[k].Data {
					kp[k].Data[j] = 0.9*kp[k].Data[j] + 0.1*q.Data[j]
				}
			}
		}
	}
	return res
}

// sameBits reports whether a and b hold the same float32 bits.
func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// diffTwoSteps names the first value of got that is not want's, bit for
// bit, or returns "".
func diffTwoSteps(got, want twoSteps) string {
	for s := range want {
		for v := range 2 {
			if !sameBits(got[s].z[v], want[s].z[v]) {
				return fmt.Sprintf("step %d: Z[%d]", s+1, v)
			}
		}
		for k := range want[s].grads {
			if !sameBits(got[s].grads[k], want[s].grads[k]) {
				return fmt.Sprintf("step %d: gradient %d", s+1, k)
			}
		}
		if len(got[s].buffers) != len(want[s].buffers) {
			return fmt.Sprintf("step %d: %d buffers, want %d", s+1, len(got[s].buffers), len(want[s].buffers))
		}
		for k := range want[s].buffers {
			if !sameBits(got[s].buffers[k], want[s].buffers[k]) {
				return fmt.Sprintf("step %d: running statistics %d", s+1, k)
			}
		}
	}
	return ""
}

// TestPoolSameBytesAnyWorkers: two steps of a pool give the same bytes
// (embeddings, gradients, running statistics) for 1, 2, 3 and 8 workers
// and GOMAXPROCS (0) under GOMAXPROCS 1, 2 and 8. On the old code the
// default shard count followed GOMAXPROCS and every default-shard case
// failed.
func TestPoolSameBytesAnyWorkers(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, c := range shardCases() {
		t.Run(c.name, func(t *testing.T) {
			runtime.GOMAXPROCS(1)
			want := twoStepsOf(t, c, 1)
			for _, procs := range []int{1, 2, 8} {
				runtime.GOMAXPROCS(procs)
				for _, workers := range []int{0, 1, 2, 3, 8} {
					if procs == 1 && workers <= 1 {
						continue // the reference
					}
					if d := diffTwoSteps(twoStepsOf(t, c, workers), want); d != "" {
						t.Errorf("GOMAXPROCS %d, workers %d: %s differs from GOMAXPROCS 1, workers 1", procs, workers, d)
					}
				}
			}
		})
	}
}

// TestPoolBatchNormSpansBatch: on an ordinary batch the shard size does
// not change the math beyond rounding, because the statistics span the
// BatchNorm group (here the whole step) however many shards compute it;
// the old code normalised each shard alone, and its embeddings at 4
// shards differed from one shard's by far more than rounding. A smaller
// group (ghost BatchNorm) does change them.
func TestPoolBatchNormSpansBatch(t *testing.T) {
	for _, key := range []bool{false, true} {
		t.Run(fmt.Sprintf("key=%v", key), func(t *testing.T) {
			images := 2 * poolN
			if key {
				images = poolN
			}
			b := poolBatch(poolN, poolIn, 24)
			g := poolGrads(poolN, poolCfg.withDefaults().Out, 34)
			one := poolStep(t, newPool(t, poolWeights(t, 14), PoolConfig{Batch: poolN, Shard: images, KeyEncoder: key}), b, g)
			w := poolWeights(t, 14)
			four := poolStep(t, newPool(t, w, PoolConfig{Batch: poolN, Shard: images / 4, KeyEncoder: key, Workers: 2}), b, g)
			checkResults(t, four, one, w.Params, 1e-5)
			ghost := poolStep(t, newPool(t, poolWeights(t, 14), PoolConfig{Batch: poolN, Shard: images / 4, BNGroup: images / 4, KeyEncoder: key}), b, g)
			for v := range 2 {
				e := relErr(ghost.z[v], one.z[v])
				t.Logf("Z[%d]: groups of %d differ from one group by %.3g relative", v, images/4, e)
				if e < 1e-3 {
					t.Errorf("Z[%d]: ghost BatchNorm (groups of %d) agrees with one group within %.3g; each group should have its own statistics", v, images/4, e)
				}
			}
		})
	}
}
