package encode

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sinks/safetensors"
	"github.com/contrastream/contrastream/stages/optim"
)

// MaxReplicas bounds StageConfig.Replicas.
const MaxReplicas = 256

// StageConfig is the config of the "encode" stage: the network, how many
// replicas share a batch, and whether a momentum (key) encoder runs on the
// second view (MoCo) or both views go through the encoder (SimCLR, SupCon).
type StageConfig struct {
	// Config is the network: arch, hidden, out.
	Config `yaml:",inline"`
	// Replicas is the number of copies of the encoder that each take an
	// equal shard of the batch and run at once (see Pool; BatchNorm
	// statistics are per shard, so the loss depends on it). Default (0):
	// the largest count up to GOMAXPROCS that splits the batch (see
	// NewPool).
	Replicas int `yaml:"replicas"`
	// KeyEncoder runs view 2 through a momentum encoder that gets no
	// gradient (MoCo); otherwise both views go through the encoder.
	KeyEncoder bool `yaml:"key_encoder"`
}

// Validate checks c.
func (c StageConfig) Validate() error {
	if err := c.Config.Validate(); err != nil {
		return err
	}
	if c.Replicas < 0 || c.Replicas > MaxReplicas {
		return &pipeline.FieldError{Field: "replicas", Msg: fmt.Sprintf("must be in [1, %d] (0: one per core), got %d", MaxReplicas, c.Replicas)}
	}
	return nil
}

// Pool runs a batch through R replicas of the encoder (and, for MoCo, R
// replicas of the momentum encoder), each on its own shard, and later
// back-propagates each shard's slice of dL/dZ and sums the replicas'
// gradients: the exact gradient of the whole batch's loss.
//
// BatchNorm statistics are per shard: each replica normalises its shard
// with that shard's own mean and variance, as MoCo's shuffled BN and
// data-parallel training on several devices do. The embeddings, loss and
// gradient are therefore those of the batch cut into R shards, and change
// with R (unless every shard has the same statistics): R = 1 is one graph
// over the whole batch (for two views, both views normalised together).
// The query and key shards of MoCo hold the same samples (no shuffle).
//
// The pool serialises training steps: Encode waits until Release has been
// called for the previous step, because the optimizer changes the weights
// in between. It is safe for use by one encode stage and one optimize
// stage at once.
type Pool struct {
	w, key     *Weights
	reps, keys []*Replica
	n, views   int // batch size; views through the query encoder
	shard      int
	params     []*optim.Param // Data shared with w; Grad the replicas' sum
	keyParams  []*optim.Param // Data shared with key; no Grad
	ready      chan struct{}
	z          [2][]float32
	xcat, gcat []float32 // both views back to back, when one replica takes both
	firstStep  int64     // added to Batch.Step by Stage (a resumed run)
}

// NewPool makes a pool for batches of n samples. w is the encoder's
// weights (shared, updated in place by the optimizer); with keyEncoder, a
// momentum encoder starts as a copy of w.
//
// Each shard lies within one view, so that a replica reads its input in
// place from the batch; a single replica of a two-view step takes both
// views, copied one after the other. So with keyEncoder replicas must
// divide n; without, it must be 1 or 2m with m dividing n (m shards per
// view). replicas ≤ 0 picks the largest such count up to GOMAXPROCS.
func NewPool(w *Weights, n, replicas int, keyEncoder bool) (*Pool, error) {
	if n < 1 {
		return nil, fmt.Errorf("encode: batch size %d, want at least 1", n)
	}
	views := 2
	if keyEncoder {
		views = 1
	}
	replicas, err := poolReplicas(n, views, replicas)
	if err != nil {
		return nil, err
	}
	shard := views * n / replicas
	p := &Pool{w: w, n: n, views: views, shard: shard, ready: make(chan struct{}, 1)}
	if shard > n {
		in := w.Input()
		p.xcat, p.gcat = make([]float32, 2*n*in.Len()), make([]float32, 2*n*w.Out())
	}
	p.ready <- struct{}{}
	for range replicas {
		r, err := NewReplica(w, p.shard)
		if err != nil {
			p.Close()
			return nil, err
		}
		p.reps = append(p.reps, r)
	}
	if keyEncoder {
		p.key = w.Clone()
		for range replicas {
			r, err := NewReplica(p.key, p.shard)
			if err != nil {
				p.Close()
				return nil, err
			}
			p.keys = append(p.keys, r)
		}
		for _, t := range p.key.Params {
			p.keyParams = append(p.keyParams, &optim.Param{Name: t.Name, Shape: t.Shape, Data: t.Data})
		}
	}
	for _, t := range w.Params {
		p.params = append(p.params, &optim.Param{Name: t.Name, Shape: t.Shape, Data: t.Data, Grad: make([]float32, len(t.Data)), NoDecay: t.NoDecay})
	}
	d := w.Out()
	p.z = [2][]float32{make([]float32, n*d), make([]float32, n*d)}
	return p, nil
}

// Replicas is the number of replicas of the encoder.
func (p *Pool) Replicas() int { return len(p.reps) }

// Params are the encoder's parameters for the optimizer: Data is the
// weights (updated in place between steps), Grad the gradient of the last
// Backward summed over the replicas.
func (p *Pool) Params() []*optim.Param { return p.params }

// KeyParams are the momentum encoder's parameters (nil without one).
func (p *Pool) KeyParams() []*optim.Param { return p.keyParams }

// Weights is the encoder's weights; KeyWeights the momentum encoder's.
func (p *Pool) Weights() *Weights    { return p.w }
func (p *Pool) KeyWeights() *Weights { return p.key }

// SyncBuffers copies replica 0's BatchNorm running statistics (each
// replica keeps its own, from its shards) into the Weights (and the key
// replica 0's into the key weights), for evaluation and checkpoints.
func (p *Pool) SyncBuffers() error {
	if err := CopyTensors(p.w.Buffers, p.reps[0].Buffers()); err != nil {
		return err
	}
	if p.key != nil {
		return CopyTensors(p.key.Buffers, p.keys[0].Buffers())
	}
	return nil
}

// LoadBuffers sets every replica's running statistics from the Weights
// (after loading a checkpoint).
func (p *Pool) LoadBuffers() error {
	for _, r := range p.reps {
		if err := CopyTensors(r.Buffers(), p.w.Buffers); err != nil {
			return err
		}
	}
	for _, r := range p.keys {
		if err := CopyTensors(r.Buffers(), p.key.Buffers); err != nil {
			return err
		}
	}
	return nil
}

// Tensors returns the encoder's weights and running statistics (replica
// 0's), and with keyPrefix != "" the momentum encoder's under that prefix,
// as safetensors tensors (copies).
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
// encoder's under that prefix, as safetensors tensors (copies). Unlike
// Tensors it does not read the replicas, whose statistics may already
// include a forward pass of a step not taken: a training step calls
// SyncBuffers once it is complete, and a checkpoint saves what Saved
// returns.
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

// input returns the rows of the batch that shard i of the query encoder
// (or of the key encoder) reads.
func (p *Pool) input(b *pipeline.Batch, i int, key bool) (x []float32, view, row int) {
	img := b.C * b.H * b.W
	if key {
		return b.Views[1][i*p.shard*img : (i+1)*p.shard*img], 1, i * p.shard
	}
	if p.xcat != nil {
		copy(p.xcat, b.Views[0])
		copy(p.xcat[p.n*img:], b.Views[1])
		return p.xcat, 0, 0
	}
	first := i * p.shard // among the views·n images, view-major
	view, row = first/p.n, first%p.n
	return b.Views[view][row*img : (row+p.shard)*img], view, row
}

// Encode runs b's forward pass once the previous step has been released,
// and returns the embeddings. The Encoded's Z buffers belong to the pool
// and stay valid until Release.
func (p *Pool) Encode(ctx context.Context, b *pipeline.Batch) (*pipeline.Encoded, error) {
	if b.Len() != p.n {
		return nil, fmt.Errorf("encode: batch of %d samples; the encoder was built for %d", b.Len(), p.n)
	}
	in := p.w.Input()
	if b.C != in.C || b.H != in.H || b.W != in.W {
		return nil, fmt.Errorf("encode: views are %d×%d×%d; the encoder takes %s", b.C, b.H, b.W, in)
	}
	for v, x := range b.Views { // both views are read, for MoCo view 2 by the key encoder
		if len(x) != p.n*in.Len() {
			return nil, fmt.Errorf("encode: view %d has %d values, want %d (%d images of %s)", v+1, len(x), p.n*in.Len(), p.n, in)
		}
	}
	select {
	case <-p.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	start := time.Now()
	d := p.w.Out()
	err := pipeline.Parallel(len(p.reps)+len(p.keys), func(j int) error {
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
			copy(p.z[0], proj[:p.n*d])
			copy(p.z[1], proj[p.n*d:])
			return nil
		}
		copy(p.z[view][row*d:(row+p.shard)*d], proj)
		return nil
	})
	if err != nil {
		p.Release()
		return nil, err
	}
	e := &pipeline.Encoded{Batch: b, N: p.n, D: d, Z: p.z}
	e.Metrics.Step, e.Metrics.Epoch, e.Metrics.Samples = b.Step, b.Epoch, b.Valid
	e.Metrics.Seconds = time.Since(start).Seconds() // the optimize stage adds the rest of the step
	return e, nil
}

// Backward back-propagates e.Grad through each query replica and sums the
// replicas' parameter gradients into Params()[i].Grad.
func (p *Pool) Backward(e *pipeline.Encoded) error {
	d := p.w.Out()
	for v := range p.views {
		if len(e.Grad[v]) != p.n*d {
			return fmt.Errorf("encode: view %d has %d gradient values, want %d×%d", v+1, len(e.Grad[v]), p.n, d)
		}
	}
	err := pipeline.Parallel(len(p.reps), func(i int) error {
		if p.gcat != nil {
			copy(p.gcat, e.Grad[0])
			copy(p.gcat[p.n*d:], e.Grad[1])
			return p.reps[i].Backward(p.gcat)
		}
		first := i * p.shard
		view, row := first/p.n, first%p.n
		return p.reps[i].Backward(e.Grad[view][row*d : (row+p.shard)*d])
	})
	if err != nil {
		return err
	}
	return pipeline.Parallel(min(len(p.params), runtime.GOMAXPROCS(0)), func(part int) error {
		for k := part; k < len(p.params); k += runtime.GOMAXPROCS(0) {
			dst := p.params[k].Grad
			copy(dst, p.reps[0].Params()[k].Grad)
			for _, r := range p.reps[1:] {
				for j, v := range r.Params()[k].Grad {
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

// Close releases the replicas.
func (p *Pool) Close() error {
	for _, r := range append(p.reps, p.keys...) {
		r.Close()
	}
	return nil
}

// poolReplicas returns the number of replicas of a pool for batches of n
// samples with views views through the query encoder: replicas, checked,
// or for replicas ≤ 0 the largest count up to GOMAXPROCS that splits them.
func poolReplicas(n, views, replicas int) (int, error) {
	total := views * n // images through the query encoder per step
	if replicas <= 0 {
		replicas = 1
		for r := min(runtime.GOMAXPROCS(0), MaxReplicas); r > 1; r-- {
			if splits(n, views, r) {
				replicas = r
				break
			}
		}
	}
	if replicas > MaxReplicas {
		return 0, fmt.Errorf("encode: %d replicas, want at most %d", replicas, MaxReplicas)
	}
	if !splits(n, views, replicas) {
		var lo, hi int // the nearest counts that work
		for r := replicas - 1; r >= 1 && lo == 0; r-- {
			if splits(n, views, r) {
				lo = r
			}
		}
		for r := replicas + 1; r <= min(total, MaxReplicas) && hi == 0; r++ {
			if splits(n, views, r) {
				hi = r
			}
		}
		near := fmt.Sprint(lo)
		if hi != 0 {
			near = fmt.Sprintf("%d or %d", lo, hi)
		}
		rule := fmt.Sprintf("a divisor of the batch size %d", n)
		if views == 2 {
			rule = fmt.Sprintf("1 or twice a divisor of the batch size %d (a whole number of shards per view)", n)
		}
		return 0, fmt.Errorf("encode: %d replicas cannot split %d images (%d per view) into equal shards within a view; choose replicas = %s, e.g. %s", replicas, total, n, rule, near)
	}
	return replicas, nil
}

// splits reports whether r replicas split views·n images into equal
// shards that each lie within one view (or, r = 1, take the whole step).
func splits(n, views, r int) bool {
	total := views * n
	if r < 1 || total%r != 0 {
		return false
	}
	shard := total / r
	return r == 1 || n%shard == 0
}
