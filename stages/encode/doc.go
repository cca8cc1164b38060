// Package encode holds the encoders of contrastream and the gorgonia ops
// they are built from.
//
// # convnet-s
//
// Three architectures: convnet-s (arch: convnet-s, the default), the
// reference encoder of cmd/reference/torch_reference.py, checked against
// PyTorch's values in testdata/convnet_s.safetensors; a CIFAR-style
// ResNet-18 (arch: resnet18; see resnet.go) for larger images; and a small
// Vision Transformer (arch: vit; see vit.go), checked against
// testdata/vit_tiny.safetensors, which has no BatchNorm and so no
// Buffers. convnet-s:
//
//	input N×C×H×W (C = 1 or 3)
//	backbone.0  conv3x3, pad 1, no bias, C→32   backbone.1  BatchNorm2d(32)  ReLU  max-pool 2
//	backbone.4  conv3x3, pad 1, no bias, 32→64  backbone.5  BatchNorm2d(64)  ReLU  max-pool 2
//	backbone.8  conv3x3, pad 1, no bias, 64→128 backbone.9  BatchNorm2d(128) ReLU
//	global average pool                          → features   N×128
//	head.0 Linear(128, Hidden)  ReLU  head.2 Linear(Hidden, Out) → projection N×Out
//
// The projection is the head's raw output, not normalised; losses
// normalise it. Parameter and buffer names are PyTorch's state_dict names.
// BatchNorm follows PyTorch: in training mode it normalises with the
// batch's mean and biased variance (ε = 1e-5) and moves the running
// statistics by 0.1 towards the batch mean and the unbiased variance; in
// eval mode it uses the running statistics.
//
// # Use
//
// Weights hold the parameters and running statistics (NewWeights
// initialises them as PyTorch does; Load and Save read and write
// safetensors). A Replica builds one gorgonia graph for a fixed shard size
// n, compiles it once and runs it for every step, on one goroutine:
//
//	r, _ := encode.NewReplica(w, n)
//	feats, proj, _ := r.Forward(x, encode.Train) // x: n×C×H×W
//	// ... the loss gives g = dL/dproj for this shard ...
//	_ = r.Backward(g) // every r.Params()[i].Grad = d sum(proj ⊙ g)/d param
//
// The objective sum(projection ⊙ g) has exactly the parameter gradient of
// the loss, so shards of a batch, with their gradients summed, give the
// gradient of the whole batch. All replicas of one Weights read its
// parameters in place: an optimizer updates Param.Data between steps, and
// every replica sees it. A lone Replica normalises with its own n images'
// BatchNorm statistics and keeps its own running statistics (Buffers).
//
// # Pool: shards, workers and BatchNorm groups
//
// A training step runs through a Pool (NewPool, PoolConfig; the encode
// stage's StageConfig), which keeps "the flow fixes the math; cores and
// workers only the speed":
//
//   - Shards. The step's images (both views for SimCLR and SupCon, view 1
//     for MoCo, whose key encoder takes view 2 in shards of the same size)
//     are cut into shards of PoolConfig.Shard images, one Replica each.
//     The default, DefaultShard, depends on the batch size alone (32 for
//     a batch of 256). The shards' gradients are summed in shard order, so
//     the shard size changes only the rounding of that sum.
//   - Workers. Every shard runs on its own goroutine; a semaphore of
//     PoolConfig.Workers tokens (default GOMAXPROCS) bounds how many
//     compute at once. A shard gives its token back while it waits at a
//     BatchNorm barrier, so any number of workers finishes the step, and
//     it changes no result.
//   - BatchNorm groups. In training mode a BatchNorm layer normalises each
//     image with the statistics of its group of PoolConfig.BNGroup images,
//     by default every image through that encoder in the step (2N images
//     for two views, as PyTorch's q(torch.cat([v1, v2])); MoCo's N
//     queries, and separately its N keys). The layer's ops in the shards
//     of a group share one bnGroup: each writes per-image partial sums
//     (sum, squared deviations; in the backward pass Σdy' and Σdy'·x̂), all
//     meet at a barrier, and the sums are added once, image by image in
//     the group's order, in float64. So the statistics are exactly those
//     of the group whatever the shards and workers. The encoder keeps one
//     set of running statistics, moved once per step by its first group
//     (a smaller, ghost group leaves the others' out, as
//     DistributedDataParallel keeps rank 0's). Eval mode uses the running
//     statistics and meets nobody. A shard that fails breaks the barriers,
//     and the others return an error.
//
// The same flow and seed thus give the same bytes (embeddings, gradients,
// running statistics) under any GOMAXPROCS and Workers
// (TestPoolSameBytesAnyWorkers). Nothing inside a replica depends on
// GOMAXPROCS: sgemm runs on the calling goroutine, each element of its
// product summed in an order fixed by the sizes. (Machines whose sgemm
// kernels differ, FMA or not, may round differently: see BLAS.)
//
// # Adding an architecture
//
// Each architecture is an Arch registered with RegisterArch from an init
// function in its own file (convnet.go, resnet.go, vit.go), and
// Config.Arch names it (ArchNames lists them). The Arch says which of
// Config's fields it reads, with their defaults and bounds, and which
// inputs it takes; it appends its backbone's parameters and buffers to new
// Weights under their PyTorch names, builds the backbone's graph up to the
// features from the package's ops, and counts its buffers for the memory
// estimates. The projection head, the replicas, the Pool, checkpoints and
// flows are the same for every architecture, so a new one is one new file
// of package encode plus its test: ExampleRegisterArch
// (example_arch_test.go) adds "tiny", one convolution and a pool, and
// trains it; TestEveryArch checks every registered architecture against
// what the package expects (ParamCount, shapes, finite gradients).
//
// # Graph
//
// Forward and backward are one graph: the forward part, then gorgonia's
// Backpropagate from a dL/dprojection input node to every parameter. It is
// compiled into three tape-machine programs: features and projection;
// features only; and the gradients. The gradient program contains the
// forward part too (gorgonia compiles every ancestor); the package's
// forward ops return the values of the forward program's run instead of
// computing them again (runState.reuse), so only the small head is
// recomputed.
//
// # Ops
//
// The convolution, BatchNorm (with the ReLU fused), max-pool and global
// average pool are this package's own gorgonia ops, each with gradient ops
// (SymDiff, for the tape machine) and DoDiff (for the Lisp machine),
// checked against central differences. gorgonia v0.9.18's own are wrong,
// missing or wasteful here:
//
//   - BatchNorm: created with nil scale and bias it makes them full-shape
//     (N×C×H×W, nn.go) instead of per channel; its float32 backward in eval
//     mode reads the running variance as the mean (op_nn.go,
//     batchnormDiffOp.f32s: runningMean := op.runningVariance.Float32s());
//     the running statistics live inside the op, out of reach of
//     checkpoints and optimizers.
//   - GlobalAveragePool2D has no gradient (neither SymDiff nor DoDiff) and
//     reads each value through Tensor.At.
//   - Conv2d is an im2col node and a matrix product whose N×(C·K·K)×(OH·OW)
//     columns and transposed copies are allocated at every run (the tape
//     machine's Reset drops every register, so each op allocates its
//     output again); this package's ops own their buffers, allocated once.
//   - MaxPool2D is correct but allocates its output, indices and gradient
//     every run.
//
// vit's ops (patch embedding, LayerNorm, Linear, multi-head attention,
// GELU, the residual sum, the class token) are this package's own as well
// (vit_ops.go: a function of the inputs into an owned buffer, and its
// gradient ops), checked against central differences and DoDiff in the
// same tests; gorgonia has no LayerNorm or exact GELU, and its reshapes,
// transposes and batched products would copy each head and allocate
// every run. Every matrix product of every op goes through sgemm
// (blas.go).
//
// The head (Linear, ReLU, Linear) uses the same ops as the ViT's MLP
// (newLinear, newReLU): gorgonia's Mul of a Transpose allocated the
// transposed weights at every run of every shard.
//
// # Cost
//
// One training step (forward and backward) of convnet-s on one replica of
// 256 28×28×1 images took 620–740 ms (BenchmarkStep, on one core of a
// 2-core AMD EPYC shared with other jobs; sgemm takes about half of it).
// A Pool's step costs about the same CPU time at any shard size: CPU
// profiles of SimCLR's step at shards of 32 and of 256 images differed by
// 3% (the extra is gorgonia's head ops, run once per shard; see
// BenchmarkPoolStep). A replica holds about 1 MB per 28×28 image of
// activations, gradients and scratch, plus a gradient of every parameter
// (about 14 bytes a parameter in training), so more, smaller shards cost
// memory for a large network: ResNet-18's 11 million parameters take
// about 150 MB per training shard. Each BatchNorm layer costs a shard a
// wait for the slowest shard of its group, forward and backward.
package encode
