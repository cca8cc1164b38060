package encode

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sinks/safetensors"
	"github.com/contrastream/contrastream/stages/optim"
)

// Bounds and defaults of StageConfig and PoolConfig.
const (
	// MaxWorkers bounds Workers.
	MaxWorkers = 1024
	// DefaultShardTarget is the shard size DefaultShard aims at.
	DefaultShardTarget = 32
)

// StageConfig is the config of the "encode" stage: the network, whether a
// momentum (key) encoder runs on the second view (MoCo) or both views go
// through the encoder (SimCLR, SupCon), and how the batch is cut into
// compute shards and BatchNorm groups. Shard and BNGroup are part of the
// math (BNGroup of the BatchNorm statistics, Shard only of the rounding of
// the gradient's sum); Workers is speed only: the same flow gives the same
// bytes whatever Workers and GOMAXPROCS are.
type StageConfig struct {
	// Config is the network: arch, hidden, out.
	Config `yaml:",inline"`
	// KeyEncoder runs view 2 through a momentum encoder that gets no
	// gradient (MoCo); otherwise both views go through the encoder.
	KeyEncoder bool `yaml:"key_encoder"`
	// Views is how many views of each sample go through the encoder with
	// gradient: 2 (SimCLR, SupCon) or 1, view 1 alone (a loss of one
	// view, crossentropy: a fine-tune; or MoCo's queries, the key encoder
	// taking view 2). Default (0): 1 with key_encoder, else 2. With
	// key_encoder it must be 1.
	Views int `yaml:"views"`
	// Freeze names parameters that are not trained, by prefix of their
	// names ("head.0." is the head's first Linear): the optimizer never
	// gets them (Pool.Params leaves them out), so they keep the values
	// they start with. Each prefix must name at least one parameter, and
	// at least one parameter must train. Default: none, every parameter
	// trains.
	Freeze []string `yaml:"freeze"`
	// Shard is the number of images per compute shard: each shard is one
	// replica of the encoder's graph, and the replicas' gradients are
	// summed in shard order. It must divide the batch size (a shard lies
	// within one view), or be every image of the step (one shard). Default
	// (0): DefaultShard(batch size), which depends on the batch size
	// alone.
	Shard int `yaml:"shard"`
	// Workers is how many shards compute at once, in [0, MaxWorkers].
	// Default (0): GOMAXPROCS. It changes only the speed.
	Workers int `yaml:"workers"`
	// BNGroup is the number of images whose BatchNorm statistics are taken
	// together. Default (0): every image through the encoder in the step,
	// as PyTorch on one device: both views together (2N images) without a
	// key encoder; with one, the N queries, and separately the N keys of
	// the momentum encoder. A smaller group (ghost BatchNorm) must be a
	// multiple of the shard size and divide the images; its running
	// statistics follow the first group (see PoolConfig.BNGroup).
	BNGroup int `yaml:"bn_group"`
	// Replicas was the number of copies of the encoder, chosen from
	// GOMAXPROCS by default, each with BatchNorm statistics of its own
	// shard. It is refused: set shard (and bn_group) to fix the math, and
	// workers for the speed. A checkpoint's recorded flow drops it (see
	// flows.UpgradeRecordedFlow).
	Replicas any `yaml:"replicas,omitempty"`
}

// Validate checks c.
func (c StageConfig) Validate() error {
	if err := c.Config.Validate(); err != nil {
		return err
	}
	if c.Replicas != nil {
		return &pipeline.FieldError{Field: "replicas", Msg: "is no longer a setting: the number of replicas came from GOMAXPROCS and changed the BatchNorm statistics; " +
			"now shard (images per compute shard; default from the batch size) and bn_group (images per BatchNorm group; default the whole batch) fix the math, " +
			"and workers (default GOMAXPROCS) only how many shards run at once. Remove replicas"}
	}
	if c.Views < 0 || c.Views > 2 {
		return &pipeline.FieldError{Field: "views", Msg: fmt.Sprintf("must be 1 or 2 (0: 1 with key_encoder, else 2), got %d", c.Views)}
	}
	if c.KeyEncoder && c.Views == 2 {
		return &pipeline.FieldError{Field: "views", Msg: "must be 1 with key_encoder: the key encoder takes view 2, the encoder view 1 alone"}
	}
	for i, f := range c.Freeze {
		if f == "" {
			return &pipeline.FieldError{Field: "freeze", Msg: fmt.Sprintf("entry %d is empty, which would freeze every parameter: name a prefix such as head.0.", i+1)}
		}
	}
	if c.Shard < 0 || c.Shard > MaxShard {
		return &pipeline.FieldError{Field: "shard", Msg: fmt.Sprintf("must be in [1, %d] (0: from the batch size), got %d", MaxShard, c.Shard)}
	}
	if c.Workers < 0 || c.Workers > MaxWorkers {
		return &pipeline.FieldError{Field: "workers", Msg: fmt.Sprintf("must be in [1, %d] (0: GOMAXPROCS), got %d", MaxWorkers, c.Workers)}
	}
	if c.BNGroup < 0 {
		return &pipeline.FieldError{Field: "bn_group", Msg: fmt.Sprintf("must be at least 1 (0: every image of the step), got %d", c.BNGroup)}
	}
	if c.Shard > 0 && c.BNGroup > 0 && c.BNGroup%c.Shard != 0 {
		return &pipeline.FieldError{Field: "bn_group", Msg: fmt.Sprintf("must be a multiple of shard (%d), got %d", c.Shard, c.BNGroup)}
	}
	return nil
}

// PoolConfig returns the config of the stage's Pool for batches of batch
// samples.
func (c StageConfig) PoolConfig(batch int) PoolConfig {
	return PoolConfig{Batch: batch, Views: c.Views, KeyEncoder: c.KeyEncoder, Freeze: c.Freeze, Shard: c.Shard, Workers: c.Workers, BNGroup: c.BNGroup}
}

// PoolConfig says what a Pool computes and how. Batch, Views and
// KeyEncoder say what; Shard and BNGroup fix the math; Workers only the
// speed. Its zero value, with Batch set, is SimCLR's: both views through
// the encoder, BatchNorm over the 2·Batch images.
type PoolConfig struct {
	// Batch is the number of samples of every batch, at least 1.
	Batch int `yaml:"batch"`
	// Views is how many views of each sample go through the encoder with
	// gradient: 2 (SimCLR, SupCon), or 1 (the view 1 of MoCo's queries,
	// or a one-view method such as a fine-tune). Default (0): 1 with
	// KeyEncoder, else 2.
	Views int `yaml:"views"`
	// KeyEncoder runs view 2 through a momentum encoder, a copy of the
	// weights that gets no gradient (MoCo). Views must be 1.
	KeyEncoder bool `yaml:"key_encoder"`
	// Freeze names, by prefix, the parameters that Params leaves out, so
	// that the optimizer never changes them (see StageConfig.Freeze); the
	// key encoder's KeyParams leave out the same. Default: none.
	Freeze []string `yaml:"freeze"`
	// Shard is the number of images per compute shard (one graph replica
	// each; the key encoder's shards are as large). It must divide Batch,
	// so that a shard lies within one view and reads it in place, or be
	// Views·Batch (one shard of the whole step, both views copied into
	// it). Default (0): DefaultShard(Batch).
	Shard int `yaml:"shard"`
	// Workers is how many shards compute at once: a semaphore of Workers
	// tokens, which a shard gives back while it waits for the other
	// shards of its BatchNorm group. Default (0): GOMAXPROCS. It changes
	// only the speed, never a result.
	Workers int `yaml:"workers"`
	// BNGroup is the number of images per BatchNorm group: in training
	// mode every image of a group is normalised with the group's mean and
	// variance, whichever shards compute it. Default (0): every image
	// through the encoder in the step (Views·Batch; the key encoder's
	// Batch keys are a group of their own). A smaller group is ghost
	// BatchNorm: it must be a multiple of Shard and divide Views·Batch
	// (and Batch, with a key encoder). The groups take the images in
	// order, view after view; only the first group of each encoder moves
	// its running statistics, once per step, as PyTorch's
	// DistributedDataParallel keeps rank 0's (broadcast_buffers).
	BNGroup int `yaml:"bn_group"`
}

// DefaultShard is the shard size a Pool takes for batches of batch samples
// when its config leaves it 0: the divisor of batch nearest to
// DefaultShardTarget (by ratio; of two equally near, the smaller), so 32
// for the batch sizes of 32 to 1024 that are multiples of 32. It depends
// on the batch size alone, so that the split, which rounds the gradient's
// sum, is the same on every machine.
func DefaultShard(batch int) int {
	best, far := 1, math.Inf(1)
	for d := 1; d <= batch; d++ {
		if batch%d != 0 {
			continue
		}
		r := float64(d) / DefaultShardTarget
		if r < 1 {
			r = 1 / r
		}
		if r < far {
			best, far = d, r
		}
	}
	return best
}

// poolPlan is a PoolConfig with its defaults resolved and checked.
type poolPlan struct {
	n, views   int
	key        bool
	shard      int
	shards     int // of the query encoder; the key encoder has n/shard
	workers    int
	group      int // images per BatchNorm group of the query encoder
	keyGroup   int // and of the key encoder
	imagesStep int // views·n: images through the query encoder
}

// plan resolves c's defaults and checks it. Its errors about Shard,
// Workers and BNGroup are *pipeline.FieldError naming the flow's fields.
func (c PoolConfig) plan() (poolPlan, error) {
	if c.Batch < 1 {
		return poolPlan{}, fmt.Errorf("encode: batch size %d, want at least 1", c.Batch)
	}
	p := poolPlan{n: c.Batch, views: c.Views, key: c.KeyEncoder, shard: c.Shard, workers: c.Workers, group: c.BNGroup}
	if p.views == 0 {
		p.views = 2
		if p.key {
			p.views = 1
		}
	}
	if p.views != 1 && p.views != 2 {
		return poolPlan{}, fmt.Errorf("encode: %d views, want 1 or 2", p.views)
	}
	if p.key && p.views != 1 {
		return poolPlan{}, fmt.Errorf("encode: a key encoder takes view 2, so the encoder takes view 1 alone: Views must be 1, got %d", p.views)
	}
	total := p.views * p.n
	p.imagesStep = total
	if p.shard == 0 {
		p.shard = DefaultShard(p.n)
	}
	if p.shard < 1 || p.shard > MaxShard {
		return poolPlan{}, &pipeline.FieldError{Field: "shard", Msg: fmt.Sprintf("must be in [1, %d] (0: from the batch size), got %d", MaxShard, p.shard)}
	}
	if p.n%p.shard != 0 && p.shard != total {
		near := nearDivisors(p.n, p.shard)
		whole := ""
		if p.views == 2 {
			whole = fmt.Sprintf(", or %d (one shard of both views)", total)
		}
		return poolPlan{}, &pipeline.FieldError{Field: "shard", Msg: fmt.Sprintf("%d images per shard do not split the batch of %d into equal shards within a view; choose a divisor of %d, e.g. %s%s", p.shard, p.n, p.n, near, whole)}
	}
	p.shards = total / p.shard
	if p.workers == 0 {
		p.workers = runtime.GOMAXPROCS(0)
	}
	if p.workers < 1 || p.workers > MaxWorkers {
		return poolPlan{}, &pipeline.FieldError{Field: "workers", Msg: fmt.Sprintf("must be in [1, %d] (0: GOMAXPROCS), got %d", MaxWorkers, p.workers)}
	}
	p.keyGroup = p.n
	if p.group == 0 {
		p.group = total
	} else {
		if p.group < 1 || p.group%p.shard != 0 || total%p.group != 0 {
			return poolPlan{}, &pipeline.FieldError{Field: "bn_group", Msg: fmt.Sprintf("%d images per BatchNorm group: want a multiple of the shard (%d images) that divides the %d images through the encoder per step, e.g. %s (0: all %d)",
				p.group, p.shard, total, nearMultiples(total, p.shard, p.group), total)}
		}
		if p.key {
			p.keyGroup = p.group
		}
	}
	return p, nil
}

// nearDivisors names the divisors of n nearest below and above d.
func nearDivisors(n, d int) string {
	lo, hi := 1, 0
	for k := min(d, n); k >= 1; k-- {
		if n%k == 0 {
			lo = k
			break
		}
	}
	for k := d + 1; k <= n; k++ {
		if n%k == 0 {
			hi = k
			break
		}
	}
	if hi == 0 {
		return fmt.Sprint(lo)
	}
	return fmt.Sprintf("%d or %d", lo, hi)
}

// nearMultiples names the multiples of m that divide total nearest below
// and above g.
func nearMultiples(total, m, g int) string {
	var lo, hi int
	for k := m; k <= total; k += m {
		if total%k != 0 {
			continue
		}
		if k < g {
			lo = k
		} else if k > g && hi == 0 {
			hi = k
		}
	}
	switch {
	case lo == 0:
		return fmt.Sprint(hi)
	case hi == 0:
		return fmt.Sprint(lo)
	}
	return fmt.Sprintf("%d or %d", lo, hi)
}

// Pool runs the batches of a training step through an encoder cut into
// shards (and, for MoCo, through the momentum encoder), and later
// back-propagates each shard's slice of dL/dZ and sums the shards'
// gradients: the exact gradient of the whole batch's loss.
//
// Shards, workers and BatchNorm groups (see PoolConfig): each shard is a
// replica of the encoder's graph for Shard images, run on a goroutine of
// its own; at most Workers of them compute at once. In training mode the
// BatchNorm layers of the shards of one group meet at a barrier for each
// layer, forward and backward, and take the group's statistics from
// per-image partial sums added in the group's image order: with the
// default group every image of the step is normalised with the whole
// batch's statistics, as PyTorch on one device, however many shards or
// workers compute it. The encoder has one set of running statistics,
// moved once per step. The shards' parameter gradients are summed in shard
// order. So a Pool's embeddings, gradients and running statistics depend
// on Batch, Views, KeyEncoder, Shard and BNGroup, and not on Workers or
// GOMAXPROCS: the same bytes on any number of cores (with the same
// matrix-multiply kernel: BLAS; kernels with and without FMA round
// differently).
//
// Costs: every shard of the query encoder holds its graph's activations
// and gradients (about 1 MB per 28×28 image for convnet-s, 15 MB per
// 32×32 image for ResNet-18) and a gradient of every parameter (so
// smaller shards cost more memory for large networks: see
// StageConfig.MemoryBytes); the key encoder's shards hold their
// activations. A barrier costs each shard a wait for the slowest one of
// its group at every BatchNorm layer.
//
// The pool serialises training steps: Encode waits until Release has been
// called for the previous step, because the optimizer changes the weights
// in between. It is safe for use by one encode stage and one optimize
// stage at once.
type Pool struct {
	w, key     *Weights
	plan       poolPlan
	reps, keys []*Replica
	// bufs and keyBufs are the encoders' running statistics, one set
	// each, shared by their shards.
	bufs, keyBufs []*Tensor
	gang          *gang
	params        []*optim.Param // Data shared with w; Grad the shards' sum; the frozen left out
	index         []int          // params[k] is w.Params[index[k]]
	keyParams     []*optim.Param // Data shared with key; no Grad; as params
	ready         chan struct{}
	z             [2][]float32
	xcat, gcat    []float32 // both views back to back, when one shard takes both
	firstStep     int64     // added to Batch.Step by Stage (a resumed run)
	// beforeShard, when set (by tests), runs at the start of each shard's
	// work in a pass ("forward" or "backward"; shard counts the key
	// encoder's after the encoder's); an error fails the shard.
	beforeShard func(pass string, shard int) error
}

// NewPool makes a pool for cfg. w is the encoder's weights (shared,
// updated in place by the optimizer; the pool keeps the running statistics
// apart, see SyncBuffers); with cfg.KeyEncoder, a momentum encoder starts
// as a copy of w.
func NewPool(w *Weights, cfg PoolConfig) (*Pool, error) {
	pl, err := cfg.plan()
	if err != nil {
		return nil, err
	}
	n, views := pl.n, pl.views
	p := &Pool{w: w, plan: pl, ready: make(chan struct{}, 1), gang: newGang(pl.workers)}
	if pl.shard > n {
		in := w.Input()
		p.xcat, p.gcat = make([]float32, views*n*in.Len()), make([]float32, views*n*w.Out())
	}
	p.ready <- struct{}{}
	p.bufs = cloneTensors(w.Buffers)
	if p.reps, err = p.replicas(w, p.bufs, pl.shards, pl.group); err != nil {
		return nil, err
	}
	if p.index, err = trained(w, cfg.Freeze); err != nil {
		return nil, err
	}
	if pl.key {
		p.key = w.Clone()
		p.keyBufs = cloneTensors(p.key.Buffers)
		if p.keys, err = p.replicas(p.key, p.keyBufs, n/pl.shard, pl.keyGroup); err != nil {
			p.Close()
			return nil, err
		}
		for _, i := range p.index {
			t := p.key.Params[i]
			p.keyParams = append(p.keyParams, &optim.Param{Name: t.Name, Shape: t.Shape, Data: t.Data})
		}
	}
	for _, i := range p.index {
		t := w.Params[i]
		p.params = append(p.params, &optim.Param{Name: t.Name, Shape: t.Shape, Data: t.Data, Grad: make([]float32, len(t.Data)), NoDecay: t.NoDecay})
	}
	d := w.Out()
	p.z[0] = make([]float32, n*d)
	if views == 2 || pl.key {
		p.z[1] = make([]float32, n*d)
	}
	return p, nil
}

// trained returns the indices in w.Params of the parameters that no
// prefix of freeze names, or a *pipeline.FieldError for "freeze" when a
// prefix names no parameter or every parameter is frozen.
func trained(w *Weights, freeze []string) ([]int, error) {
	used := make([]bool, len(freeze))
	var idx []int
	for i, t := range w.Params {
		frozen := false
		for j, f := range freeze {
			if strings.HasPrefix(t.Name, f) {
				frozen, used[j] = true, true
			}
		}
		if !frozen {
			idx = append(idx, i)
		}
	}
	for j, f := range freeze {
		if !used[j] {
			names := make([]string, len(w.Params))
			for i, t := range w.Params {
				names[i] = t.Name
			}
			return nil, &pipeline.FieldError{Field: "freeze", Msg: fmt.Sprintf("%q names no parameter of the %s encoder (its parameters: %s)", f, w.Config().Arch, strings.Join(names, ", "))}
		}
	}
	if len(idx) == 0 {
		return nil, &pipeline.FieldError{Field: "freeze", Msg: "freezes every parameter of the encoder: nothing would train"}
	}
	return idx, nil
}

// replicas makes shards replicas of w's encoder, of the pool's shard size,
// sharing the running statistics bufs, with BatchNorm groups of group
// images; on an error it closes those it made.
func (p *Pool) replicas(w *Weights, bufs []*Tensor, shards, group int) ([]*Replica, error) {
	s := p.plan.shard
	groups := map[string][]*bnGroup{} // by layer, one per group of the step
	var reps []*Replica
	for i := range shards {
		gi, member := i*s/group, i*s%group/s
		r, err := buildReplica(w, s, replicaOptions{
			buffers: bufs,
			group: func(name string, c, hw int, runMean, runVar []float32) (*bnGroup, int) {
				gs := groups[name]
				if gs == nil {
					gs = make([]*bnGroup, shards*s/group)
					groups[name] = gs
				}
				if gs[gi] == nil {
					gs[gi] = newBNGroup(p.gang, group/s, s, c, hw, runMean, runVar, gi == 0)
				}
				return gs[gi], member
			},
		})
		if err != nil {
			for _, r := range reps {
				r.Close()
			}
			return nil, err
		}
		reps = append(reps, r)
	}
	return reps, nil
}

// cloneTensors returns copies of ts.
func cloneTensors(ts []*Tensor) []*Tensor {
	out := make([]*Tensor, len(ts))
	for i, t := range ts {
		out[i] = t.clone()
	}
	return out
}

// Shards is the number of shards of the encoder per step (the key
// encoder, if any, has Batch/ShardSize of them).
func (p *Pool) Shards() int { return len(p.reps) }

// ShardSize is the number of images per shard.
func (p *Pool) ShardSize() int { return p.plan.shard }

// Workers is how many shards compute at once.
func (p *Pool) Workers() int { return p.plan.workers }

// BNGroup is the number of images per BatchNorm group of the encoder.
func (p *Pool) BNGroup() int { return p.plan.group }

// Views is how many views of each sample go through the encoder.
func (p *Pool) Views() int { return p.plan.views }

// Params are the encoder's parameters for the optimizer, those that
// PoolConfig.Freeze leaves training (by default all, in the Weights'
// order): Data is the weights (updated in place between steps), Grad the
// gradient of the last Backward summed over the shards.
func (p *Pool) Params() []*optim.Param { return p.params }

// KeyParams are the momentum encoder's parameters (nil without one),
// those of Params, position by position.
func (p *Pool) KeyParams() []*optim.Param { return p.keyParams }

// Weights is the encoder's weights; KeyWeights the momentum encoder's.
func (p *Pool) Weights() *Weights    { return p.w }
func (p *Pool) KeyWeights() *Weights { return p.key }

// SyncBuffers copies the encoder's BatchNorm running statistics (one set,
// which the shards share and training passes move) into the Weights (and
// the key encoder's into the key weights), for evaluation and checkpoints.
func (p *Pool) SyncBuffers() error {
	if err := CopyTensors(p.w.Buffers, p.bufs); err != nil {
		return err
	}
	if p.key != nil {
		return CopyTensors(p.key.Buffers, p.keyBufs)
	}
	return nil
}

// LoadBuffers sets the running statistics that the shards move from the
// Weights (after loading a checkpoint).
func (p *Pool) LoadBuffers() error {
	if err := CopyTensors(p.bufs, p.w.Buffers); err != nil {
		return err
	}
	if p.key != nil {
		return CopyTensors(p.keyBufs, p.key.Buffers)
	}
	return nil
}

// Tensors returns the encoder's weights and running statistics, and with
// keyPrefix != "" the momentum encoder's under that prefix, as safetensors
// tensors (copies). It calls SyncBuffers first.
func (p *Pool) Tensors(keyPrefix string) (model, key map[string]safetensors.Tensor, err error) {
	if err := p.SyncBuffers(); err != nil {
		return nil, nil, err
	}
	model = p.w.SafeTensors("")
	if p.key != nil && keyPrefix != "" {
		key = p.key.SafeTensors(keyPrefix)
	}
	return model, key, nil
}

// Saved returns the encoder's weights and the running statistics last
// copied into them by SyncBuffers, and with keyPrefix != "" the momentum
// encoder's under that prefix, as safetensors tensors that share the
// weights' memory (copy them before the next step changes it). Unlike
// Tensors it does not read the replicas, whose statistics may already
// include a forward pass of a step not taken: a training step calls
// SyncBuffers once it is complete, and a checkpoint saves a copy of what
// Saved returns.
func (p *Pool) Saved(keyPrefix string) (model, key map[string]safetensors.Tensor) {
	model = p.w.SafeTensors("")
	if p.key != nil && keyPrefix != "" {
		key = p.key.SafeTensors(keyPrefix)
	}
	return model, key
}

// SetFirstStep makes Stage number the batches it receives from first on
// (it adds first to each Batch.Step), so that a resumed run's steps
// continue the count of the run it resumes. Call it before the stage runs.
func (p *Pool) SetFirstStep(first int64) { p.firstStep = first }

// input returns the images of the batch that shard i of the encoder (or
// of the key encoder) reads, and the view and row of its first sample.
func (p *Pool) input(b *pipeline.Batch, i int, key bool) (x []float32, view, row int) {
	img, s, n := b.C*b.H*b.W, p.plan.shard, p.plan.n
	if key {
		return b.Views[1][i*s*img : (i+1)*s*img], 1, i * s
	}
	if p.xcat != nil {
		copy(p.xcat, b.Views[0])
		copy(p.xcat[n*img:], b.Views[1])
		return p.xcat, 0, 0
	}
	first := i * s // among the views·n images, view-major
	view, row = first/n, first%n
	return b.Views[view][row*img : (row+s)*img], view, row
}

// run calls f(0), …, f(shards−1) for a pass, each on a goroutine of its
// own holding one of the workers' tokens (given back while it waits at a
// BatchNorm barrier). A shard that fails or panics breaks every barrier,
// so that the others return instead of waiting for it; run returns the
// first failure.
func (p *Pool) run(pass string, shards int, f func(i int) error) error {
	p.gang.reset()
	err := pipeline.Parallel(shards, func(i int) (err error) {
		p.gang.acquire()
		defer p.gang.release()
		defer func() {
			if r := recover(); r != nil {
				err = &pipeline.PanicError{Value: r, Stack: debug.Stack()}
			}
			if err != nil {
				p.gang.abort(err)
			}
		}()
		if p.beforeShard != nil {
			if err := p.beforeShard(pass, i); err != nil {
				return err
			}
		}
		return f(i)
	})
	if err != nil {
		if cause := p.gang.failure(); cause != nil {
			err = cause
		}
		return fmt.Errorf("encode: %s: %w", pass, err)
	}
	return nil
}

// Encode runs b's forward pass once the previous step has been released,
// and returns the embeddings. The Encoded's Z buffers belong to the pool
// and stay valid until Release. With one view and no key encoder, Z[1] is
// nil and b's view 2 is not read.
func (p *Pool) Encode(ctx context.Context, b *pipeline.Batch) (*pipeline.Encoded, error) {
	n := p.plan.n
	if b.Len() != n {
		return nil, fmt.Errorf("encode: batch of %d samples; the encoder was built for %d", b.Len(), n)
	}
	in := p.w.Input()
	if b.C != in.C || b.H != in.H || b.W != in.W {
		return nil, fmt.Errorf("encode: views are %d×%d×%d; the encoder takes %s", b.C, b.H, b.W, in)
	}
	read := 1 // views read: MoCo's view 2 by the key encoder
	if p.plan.views == 2 || p.plan.key {
		read = 2
	}
	for v, x := range b.Views[:read] {
		if len(x) != n*in.Len() {
			return nil, fmt.Errorf("encode: view %d has %d values, want %d (%d images of %s)", v+1, len(x), n*in.Len(), n, in)
		}
	}
	select {
	case <-p.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	start := time.Now()
	d, s := p.w.Out(), p.plan.shard
	err := p.run("forward", len(p.reps)+len(p.keys), func(j int) error {
		key := j >= len(p.reps)
		i, r := j, p.reps
		if key {
			i, r = j-len(p.reps), p.keys
		}
		x, view, row := p.input(b, i, key)
		_, proj, err := r[i].Forward(x, Train)
		if err != nil {
			return err
		}
		if p.xcat != nil && !key {
			for v := range p.plan.views {
				copy(p.z[v], proj[v*n*d:(v+1)*n*d])
			}
			return nil
		}
		copy(p.z[view][row*d:(row+s)*d], proj)
		return nil
	})
	if err != nil {
		p.Release()
		return nil, err
	}
	e := &pipeline.Encoded{Batch: b, N: n, D: d, Z: p.z}
	e.Metrics.Step, e.Metrics.Epoch, e.Metrics.Samples = b.Step, b.Epoch, b.Valid
	e.Metrics.Seconds = time.Since(start).Seconds() // the optimize stage adds the rest of the step
	return e, nil
}

// Backward back-propagates e.Grad through each shard of the encoder and
// sums the shards' parameter gradients, in shard order, into
// Params()[i].Grad.
func (p *Pool) Backward(e *pipeline.Encoded) error {
	d, n, s := p.w.Out(), p.plan.n, p.plan.shard
	for v := range p.plan.views {
		if len(e.Grad[v]) != n*d {
			return fmt.Errorf("encode: view %d has %d gradient values, want %d×%d", v+1, len(e.Grad[v]), n, d)
		}
	}
	err := p.run("backward", len(p.reps), func(i int) error {
		if p.gcat != nil {
			for v := range p.plan.views {
				copy(p.gcat[v*n*d:], e.Grad[v])
			}
			return p.reps[i].Backward(p.gcat)
		}
		first := i * s
		view, row := first/n, first%n
		return p.reps[i].Backward(e.Grad[view][row*d : (row+s)*d])
	})
	if err != nil {
		return err
	}
	// Each element is summed shard 0, 1, 2, … whatever the split of the
	// parameters over the workers.
	parts := min(len(p.params), p.plan.workers)
	return pipeline.Parallel(parts, func(part int) error {
		for k := part; k < len(p.params); k += parts {
			dst, i := p.params[k].Grad, p.index[k]
			copy(dst, p.reps[0].Params()[i].Grad)
			for _, r := range p.reps[1:] {
				for j, v := range r.Params()[i].Grad {
					dst[j] += v
				}
			}
		}
		return nil
	})
}

// Release lets the next Encode run: the optimizer has finished with the
// step.
func (p *Pool) Release() {
	select {
	case p.ready <- struct{}{}:
	default:
	}
}

// Stage is the encode stage: it turns each *pipeline.Batch into a
// *pipeline.Encoded.
func (p *Pool) Stage() pipeline.Stage {
	return pipeline.StageFunc(func(ctx context.Context, in *pipeline.Inbox, out *pipeline.Outbox) error {
		return pipeline.Each(ctx, in, "encode", func(b *pipeline.Batch) error {
			b.Step += p.firstStep
			start := time.Now()
			e, err := p.Encode(ctx, b)
			if e != nil { // the time not spent in the forward pass waited for the previous step
				in.Metrics().AddWaitOut(time.Since(start) - time.Duration(e.Metrics.Seconds*float64(time.Second)))
			}
			if err != nil {
				return fmt.Errorf("step %d: %w", b.Step, err)
			}
			return out.Send(ctx, e)
		})
	})
}

// Close releases the shards' replicas.
func (p *Pool) Close() error {
	for _, r := range append(p.reps, p.keys...) {
		r.Close()
	}
	return nil
}
