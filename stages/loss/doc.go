// Package loss computes the losses of a training step and their gradients
// with respect to the embeddings, in closed form: the contrastive losses
// InfoNCE with a queue of negatives (MoCo), NT-Xent (SimCLR) and the
// supervised contrastive loss SupCon (L_out), and the softmax
// cross-entropy of a classifier (fine-tuning, the supervised baseline).
//
// In the training step (DESIGN.md, "The training step") the encode stage
// gathers the shards' embeddings, a Loss turns them into the loss and
// G = dL/dZ, and each replica back-propagates its rows of G through the
// objective sum(Z ⊙ G). The matrices here are small (a few hundred rows of
// a few hundred columns), so the losses are plain Go loops over float32
// inputs, computed in float64, rather than gorgonia graphs; only InfoNCE's
// two products with its queue of thousands of keys run in float32 on the
// SGEMM kernel (stages/internal/sgemm), which keeps it within 1e-7 of
// PyTorch's float64 values.
//
//	Inputs{Z[0], Z[1] (N×D each), Labels, Valid, Queue (K×D)}
//	    │  L2-normalise every row (x / max(‖x‖, 1e-12), as F.normalize)
//	    │  cosines / T  →  softmax cross-entropy  →  mean over the anchors
//	    ▼
//	Outputs{Loss, Grad[0], Grad[1] (N×D each), PosCos, NegCos, Top1, Anchors}
//
// Every contrastive loss normalises its inputs itself and back-propagates
// through the normalisation, so an encoder can hand over its raw
// projections.
//
// # The losses
//
// With ẑ the normalised embeddings and T the temperature:
//
//   - InfoNCE (T = 0.2): query i (Z[0]) has its key (Z[1]) as positive and
//     the K queue rows as negatives; L_i = −log softmax([q̂_i·k̂_i,
//     q̂_i·û_1, …, q̂_i·û_K]/T)_0, averaged over the queries. Only the query
//     gets a gradient: Grad[1] comes back with length 0.
//   - NTXent (T = 0.5): the 2N views are anchors; each has its other view as
//     positive and the other 2N−2 views as negatives, itself excluded; mean
//     over the 2N anchors. Both views get a gradient.
//   - SupCon (T = 0.1, no base-temperature rescaling): as NTXent, but an
//     anchor's positives are every other view of its class, its own other
//     view included, and L_a is minus the mean over the positives of the
//     log-probability (L_out). A class that appears once in a batch is
//     fine: its anchors' only positive is the other view. An anchor with
//     no positive at all, impossible with two views, would be left out of
//     the mean (and of Anchors and the metrics) and get no gradient as an
//     anchor; it would still be a negative of the others.
//   - CrossEntropy (no temperature, one view): Z[0] are a classifier's
//     logits, one column per class, neither normalised nor compared with
//     another view; L_i = −log softmax(z_i)_{y_i}, averaged over the
//     samples, with gradient (softmax − one-hot)/Valid. Its Kind reads one
//     view (Views 1): Z[1] may be empty and Grad[1] comes back empty.
//
// The three agree with PyTorch's, as written in torch_reference.py, within
// 1e-7 relative on testdata/{infonce,ntxent,supcon}.safetensors (copies of
// ../shared/testvectors), and their gradients with finite differences.
//
// # Padding
//
// A padded batch (pipeline.Batch.Valid < N, the padding at the end) passes
// Valid through Inputs.Valid: samples Valid…N−1 are no anchors, positives
// or negatives and count in no metric, and their rows of Grad are zero, so
// the outputs equal those of the first Valid samples alone. Their labels
// may be anything, −1 included.
//
// # Cost and ownership
//
// A Loss holds its float64 scratch between calls and fills the caller's
// Outputs.Grad buffers, so a training loop that reuses one Outputs
// allocates nothing per step once the first step has sized everything. A
// Loss is therefore not safe for concurrent use; Inputs are only read.
//
// A call splits its rows over Workers goroutines (default GOMAXPROCS), the
// calling one and Workers−1 started for each phase and gone when Compute
// returns (through pipeline.Team, the project's one fan-out); a panic in
// one comes back as Compute's error, wrapping a *pipeline.PanicError with
// the stack. The rows are cut
// at multiples of four and per-row terms are summed in row order, so the
// results are the same, bit for bit, for any number of workers. Measured on
// this project's 2-core machine at N = 256, D = 128 (go test -bench .):
// InfoNCE with K = 4096 about 80 ms on one worker and 42 ms on two (about
// 2·N·K·D multiply-adds); NTXent and SupCon about 18 ms and 10 ms (about
// 2·(2N)²·D).
//
// # Configuration
//
// Config (type, temperature, workers) chooses a loss for a flow spec; New
// builds it with the Kind that the loss registered under its type. Each
// built-in loss also has its own config (InfoNCEConfig, NTXentConfig,
// SupConConfig). In all of them the zero value means the defaults, and
// Validate returns a *pipeline.FieldError that names the field. The
// temperature is a pointer: nil (left out of the flow) means the
// loss's default, and an explicit 0, like any temperature under
// MinTemperature, is an error rather than the default.
//
// # Adding a loss (method)
//
// A loss is one file plus its test. Its file implements Loss (Name and
// Compute: the loss of Inputs and its gradient dL/dZ, through the L2
// normalisation, with Inputs.Check for the shapes and zero rows for the
// padding) and registers a Kind from an init function: its Name (the
// Config.Type and a flow's "type:"), a one-line Doc, its
// DefaultTemperature (0 for none), New, what it Needs from the training
// flow (Labels: a labelled dataset; Queue: a queue stage of keys before
// the loss) and its MemoryBytes. Nothing else changes: Config.Validate and
// New find it by name, Config.MemoryBytes adds its scratch, and the
// training flows check its Needs when they build the loss stage, refusing
// a flow that cannot provide them with an error that names the loss.
// TestEveryLoss checks every registered loss's gradient against finite
// differences. Example_register adds a toy, "alignment", in a test file;
// the flows package's Example_method trains an encoder with it.
package loss
