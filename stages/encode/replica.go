package encode

import (
	"errors"
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	_ "go4.org/unsafe/assume-no-moving-gc" // gorgonia's start-up fix on Go 1.26
)

// Mode selects how BatchNorm behaves in a forward pass.
type Mode int

const (
	// Train normalises with the batch statistics of the BatchNorm group (a
	// lone replica's own images; a Pool's group of shards) and moves the
	// running statistics.
	Train Mode = iota
	// Eval normalises with the running statistics and updates nothing: the
	// mode of a frozen encoder.
	Eval
)

func (m Mode) String() string {
	switch m {
	case Train:
		return "train"
	case Eval:
		return "eval"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Param is a learnable parameter as a replica sees it: the Weights'
// tensor (Data shared with the Weights and every other replica of them)
// and the replica's own gradient.
type Param struct {
	*Tensor
	// Grad is the gradient of the last Backward, of len(Data).
	Grad []float32
}

// Replica is one copy of an encoder's compute for a fixed shard size n: a
// gorgonia graph built and compiled once (forward, and backward from
// dL/dprojection to every parameter), run again for each step.
//
// A Replica reads its Weights' parameters in place; it owns its gradients
// and every buffer of its graph, and (made by NewReplica) its BatchNorm
// running statistics, copied from the Weights (see Buffers and
// CopyTensors). It is not safe for concurrent use: run each replica on one
// goroutine, and several replicas of the same Weights concurrently, as
// long as nothing writes the Weights meanwhile. A Pool's shard replicas
// share their encoder's running statistics and meet at BatchNorm barriers:
// only the Pool runs them.
//
// Cost: the graph's activations and their gradients for n images (about
// 1 MB per 28×28 image for convnet-s: 258 MB at n = 256) stay allocated
// for the replica's life.
type Replica struct {
	w   *Weights
	n   int
	st  *runState
	g   *G.ExprGraph
	x   *tensor.Dense // input, N×C×H×W
	dy  *tensor.Dense // dL/dprojection, N×Out
	fwd G.VM          // features and projection
	enc G.VM          // features only
	all G.VM          // forward replayed (reused), then backward

	featNode, projNode *G.Node
	gradNodes          G.Nodes
	params             []*Param
	buffers            []*Tensor

	features, projection []float32
	forwarded            bool
}

// NewReplica builds and compiles the graph of w's encoder for shards of n
// images. Its BatchNorm statistics in training mode are those of its own
// n images, and its running statistics its own (see Buffers).
func NewReplica(w *Weights, n int) (r *Replica, err error) {
	return buildReplica(w, n, replicaOptions{})
}

// replicaOptions make a Replica one shard of a Pool's encoder.
type replicaOptions struct {
	// buffers are the running statistics the replica reads and (through
	// its BatchNorm groups) moves, shared with the encoder's other
	// replicas; nil: a copy of the Weights' own.
	buffers []*Tensor
	// group returns the BatchNorm group of the layer called name (c
	// channels, hw positions) that the replica's shard belongs to, and
	// the shard's place in it; nil: a group of the replica alone.
	group func(name string, c, hw int, runMean, runVar []float32) (*bnGroup, int)
}

func buildReplica(w *Weights, n int, o replicaOptions) (r *Replica, err error) {
	if n < 1 || n > MaxShard {
		return nil, fmt.Errorf("encode: shard size %d, want 1 to %d", n, MaxShard)
	}
	defer func() {
		if p := recover(); p != nil {
			r, err = nil, fmt.Errorf("encode: building the graph: %v", p)
		}
	}()
	in := w.Input()
	r = &Replica{w: w, n: n, st: &runState{train: true}, g: G.NewGraph()}
	r.buffers = o.buffers
	if r.buffers == nil {
		for _, t := range w.Buffers {
			r.buffers = append(r.buffers, t.clone())
		}
	}
	buf := func(name string) []float32 {
		for _, t := range r.buffers {
			if t.Name == name {
				return t.Data
			}
		}
		panic("no buffer " + name)
	}
	paramNodes := make(map[string]*G.Node, len(w.Params))
	var nodes G.Nodes
	for _, t := range w.Params {
		v := tensor.New(tensor.WithShape(t.Shape...), tensor.WithBacking(t.Data))
		nd := G.NewTensor(r.g, tensor.Float32, len(t.Shape), G.WithShape(t.Shape...), G.WithName(t.Name), G.WithValue(v))
		paramNodes[t.Name] = nd
		nodes = append(nodes, nd)
		r.params = append(r.params, &Param{Tensor: t, Grad: make([]float32, len(t.Data))})
	}

	r.x = tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(n, in.C, in.H, in.W))
	xNode := G.NewTensor(r.g, tensor.Float32, 4, G.WithShape(n, in.C, in.H, in.W), G.WithName("input"), G.WithValue(r.x))
	nb := &netBuilder{st: r.st, n: n, param: paramNodes, buf: buf, group: o.group}
	h := &act{node: xNode, c: in.C, h: in.H, w: in.W}
	if r.featNode, err = w.Config().arch().Build(nb, h, w.Config()); err != nil {
		return nil, err
	}
	// The head: Linear, ReLU, Linear, in our ops, which write into
	// buffers of their own (gorgonia's Mul of a Transpose allocates the
	// transposed weights at every run, once per shard).
	feats, hidden := w.Features(), w.Config().Hidden
	hid := G.Must(G.ApplyOp(newLinear(head0, r.st, n, feats, hidden), r.featNode, paramNodes[head0+".weight"], paramNodes[head0+".bias"]))
	hid = G.Must(G.ApplyOp(newReLU(head0+"relu", r.st, n, hidden), hid))
	r.projNode = G.Must(G.ApplyOp(newLinear(head2, r.st, n, hidden, w.Out()), hid, paramNodes[head2+".weight"], paramNodes[head2+".bias"]))

	out := w.Out()
	r.dy = tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(n, out))
	dyNode := G.NewMatrix(r.g, tensor.Float32, G.WithShape(n, out), G.WithName("dprojection"), G.WithValue(r.dy))
	if r.gradNodes, err = G.Backpropagate(G.Nodes{r.projNode}, G.Nodes{dyNode}, nodes); err != nil {
		return nil, fmt.Errorf("encode: differentiating the graph: %w", err)
	}

	// Three programs over the one graph, each compiled once. CompileFunction
	// takes the subgraph the outputs need; its inputs only have to be in it.
	prog, locs, err := G.CompileFunction(r.g, G.Nodes{xNode}, G.Nodes{r.featNode, r.projNode})
	if err != nil {
		return nil, fmt.Errorf("encode: compiling the forward graph: %w", err)
	}
	r.fwd = G.NewTapeMachine(r.g, G.WithPrecompiled(prog, locs))
	if prog, locs, err = G.CompileFunction(r.g, G.Nodes{xNode}, G.Nodes{r.featNode}); err != nil {
		return nil, fmt.Errorf("encode: compiling the features graph: %w", err)
	}
	r.enc = G.NewTapeMachine(r.g, G.WithPrecompiled(prog, locs))
	if prog, locs, err = G.CompileFunction(r.g, G.Nodes{dyNode}, r.gradNodes); err != nil {
		return nil, fmt.Errorf("encode: compiling the backward graph: %w", err)
	}
	r.all = G.NewTapeMachine(r.g, G.WithPrecompiled(prog, locs))
	r.features = make([]float32, n*w.Features())
	r.projection = make([]float32, n*out)
	return r, nil
}

// netBuilder adds an encoder's backbone to a replica's graph: the shard
// size, the ops' shared state, the parameters' nodes by name, the
// replica's running statistics by name, and its BatchNorm groups (nil:
// its own).
type netBuilder struct {
	st    *runState
	n     int
	param map[string]*G.Node
	buf   func(name string) []float32
	group func(name string, c, hw int, runMean, runVar []float32) (*bnGroup, int)
}

// batchNorm returns the BatchNorm op of the layer called name on
// activations of c×h×w, with the ReLU fused when relu is set.
func (nb *netBuilder) batchNorm(name string, c, h, w int, relu bool) *batchNormOp {
	rm, rv := nb.buf(name+".running_mean"), nb.buf(name+".running_var")
	if nb.group == nil {
		return newBatchNormOp(name, nb.st, nb.n, c, h, w, relu, rm, rv)
	}
	g, member := nb.group(name, c, h*w, rm, rv)
	return newGroupBatchNormOp(name, nb.st, nb.n, c, h, w, relu, g, member)
}

// act is an activation node of the backbone, n×c×h×w.
type act struct {
	node    *G.Node
	c, h, w int
}

// convnetS adds convnet-s's backbone on x and returns its last block's
// output.
func (nb *netBuilder) convnetS(x *act) (*act, error) {
	h, c, hh, ww := x.node, x.c, x.h, x.w
	for _, b := range convnetS {
		geo, err := newConvGeom(nb.n, c, hh, ww, b.out, 3, 1, 1)
		if err != nil {
			return nil, err
		}
		h = G.Must(G.ApplyOp(newConvOp(b.conv, nb.st, geo), h, nb.param[b.conv+".weight"]))
		c = b.out
		bn := nb.batchNorm(b.bn, c, hh, ww, true)
		h = G.Must(G.ApplyOp(bn, h, nb.param[b.bn+".weight"], nb.param[b.bn+".bias"]))
		if b.pool {
			mp, err := newMaxPoolOp(b.bn+".pool", nb.st, nb.n, c, hh, ww, 2)
			if err != nil {
				return nil, err
			}
			h = G.Must(G.ApplyOp(mp, h))
			hh, ww = hh/2, ww/2
		}
	}
	return &act{node: h, c: c, h: hh, w: ww}, nil
}

// ShardSize is the number of images of every call.
func (r *Replica) ShardSize() int { return r.n }

// Weights are the weights the replica reads.
func (r *Replica) Weights() *Weights { return r.w }

// Params lists the parameters in the Weights' order, with this replica's
// gradients.
func (r *Replica) Params() []*Param { return r.params }

// Param returns the parameter called name, or nil.
func (r *Replica) Param(name string) *Param {
	for _, p := range r.params {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// Buffers are the replica's BatchNorm running statistics, named as the
// Weights' Buffers: a training forward pass updates them in place, an
// eval pass reads them. Copy them to or from the Weights with
// CopyTensors.
func (r *Replica) Buffers() []*Tensor { return r.buffers }

func (r *Replica) run(vm G.VM) error {
	vm.Reset()
	err := vm.RunAll()
	vm.Reset()
	return err
}

func (r *Replica) load(x []float32) error {
	if want := r.n * r.w.Input().Len(); len(x) != want {
		return fmt.Errorf("encode: input of %d values, want %d (%d images of %s)", len(x), want, r.n, r.w.Input())
	}
	copy(r.x.Float32s(), x)
	return nil
}

// Forward runs the encoder on x, n images of the Weights' input shape in
// NCHW order, and returns the features (n×Features) and the projection
// (n×Out), both row-major and owned by the replica: they stay valid until
// the next Forward or Features. In Train mode it updates the running
// statistics.
func (r *Replica) Forward(x []float32, mode Mode) (features, projection []float32, err error) {
	if err := r.begin(x, mode); err != nil {
		return nil, nil, err
	}
	if err := r.run(r.fwd); err != nil {
		return nil, nil, fmt.Errorf("encode: forward: %w", err)
	}
	if err := r.read(r.featNode, r.features); err != nil {
		return nil, nil, err
	}
	if err := r.read(r.projNode, r.projection); err != nil {
		return nil, nil, err
	}
	r.st.reuse, r.forwarded = true, true
	return r.features, r.projection, nil
}

// Features runs the encoder without its head (the frozen encoder's use)
// and returns the features as Forward does. A Backward may follow it.
func (r *Replica) Features(x []float32, mode Mode) ([]float32, error) {
	if err := r.begin(x, mode); err != nil {
		return nil, err
	}
	if err := r.run(r.enc); err != nil {
		return nil, fmt.Errorf("encode: forward: %w", err)
	}
	if err := r.read(r.featNode, r.features); err != nil {
		return nil, err
	}
	r.st.reuse, r.forwarded = true, true
	return r.features, nil
}

func (r *Replica) begin(x []float32, mode Mode) error {
	if mode != Train && mode != Eval {
		return fmt.Errorf("encode: unknown mode %v", mode)
	}
	if err := r.load(x); err != nil {
		return err
	}
	r.st.train, r.st.reuse, r.forwarded = mode == Train, false, false
	return nil
}

// Backward back-propagates g = dL/dprojection (n×Out, row-major) through
// the last forward pass and writes every parameter's gradient of
// sum(projection ⊙ g) into its Grad (overwriting it). It may run several
// times after one forward pass.
func (r *Replica) Backward(g []float32) error {
	if !r.forwarded {
		return errors.New("encode: Backward without a forward pass")
	}
	if want := r.n * r.w.Out(); len(g) != want {
		return fmt.Errorf("encode: gradient of %d values, want %d (%d×%d)", len(g), want, r.n, r.w.Out())
	}
	copy(r.dy.Float32s(), g)
	r.st.gen++
	if err := r.run(r.all); err != nil {
		return fmt.Errorf("encode: backward: %w", err)
	}
	for i, p := range r.params {
		if err := r.read(r.gradNodes[i], p.Grad); err != nil {
			return err
		}
	}
	return nil
}

// read copies a node's value into dst.
func (r *Replica) read(n *G.Node, dst []float32) error {
	v := n.Value()
	if v == nil {
		return fmt.Errorf("encode: node %v has no value", n.Name())
	}
	d, err := valueF32(v)
	if err != nil {
		return fmt.Errorf("encode: node %v: %w", n.Name(), err)
	}
	if len(d) != len(dst) {
		return fmt.Errorf("encode: node %v has %d values, want %d", n.Name(), len(d), len(dst))
	}
	copy(dst, d)
	return nil
}

// Close releases the replica's machines.
func (r *Replica) Close() error {
	return errors.Join(r.fwd.Close(), r.enc.Close(), r.all.Close())
}
