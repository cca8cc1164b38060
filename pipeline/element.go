package pipeline

import "image"

// NoLabel is the Label of a sample that has none.
const NoLabel int64 = -1

// Sample is one item of a dataset as a source emits it.
//
// A source fills Index, Label and Origin (and Path where it has one), and either Encoded (PNG or JPEG
// bytes, decoded later inside the augmentation pool so that decoding runs in
// parallel) or Image (sources whose pixels are raw, such as IDX). A Sample is
// owned by whoever received it last; sources never reuse its buffers.
type Sample struct {
	// Index is the sample's stable position in the dataset: the row number
	// over all of the source's files in their sorted order. It does not
	// change with shuffling or sharding.
	Index int64
	// Label is the class label, or NoLabel.
	Label int64
	// Epoch is the pass over the dataset this sample belongs to, from 0.
	Epoch int
	// Encoded holds the encoded image bytes when Image is nil.
	Encoded []byte
	// Image holds the decoded image when the source has raw pixels.
	Image image.Image
	// Origin says where the sample came from, for error messages:
	// "train.parquet row 17", "cats/001.png".
	Origin string
	// Path is the image's own file path where the source has one (an
	// image folder's file), "" otherwise (a Parquet row, an IDX image).
	// Embedding files record it.
	Path string
}

// View is one augmented image: float32, channels × height × width, in
// CHW order, normalised.
type View struct {
	// C, H and W are the view's channels, height and width.
	C, H, W int
	// Data holds the C×H×W values, channel by channel, each channel row by
	// row; len(Data) == C*H*W.
	Data []float32
}

// Pair is two independent augmentations of one sample: the positive pair of
// contrastive learning. Both views travel in one value and are never split
// across branches of a flow.
type Pair struct {
	// Index is the Index of the sample the views were made from.
	Index int64
	// Label is the sample's Label, or NoLabel.
	Label int64
	// Epoch is the sample's Epoch.
	Epoch int
	// Views are the two augmented views, made with independent random
	// draws.
	Views [2]View
}

// Batch is a fixed-shape batch of pairs, as the encoder consumes it.
//
// Views[v] holds view v of every sample back to back: N×C×H×W float32 in
// NCHW order, where N = len(Indices). When the last batch of an epoch is
// padded, the samples from Valid onwards are padding (copies of earlier
// samples of the epoch) and must not count in losses or metrics.
type Batch struct {
	// Epoch is the epoch of the batch's samples.
	Epoch int
	// Step is the global step, counted from 0 over all epochs.
	Step int64
	// Indices are the samples' Index values, in batch order.
	Indices []int64
	// Labels are the samples' Label values, in batch order.
	Labels []int64
	// Valid is the number of real (not padding) samples; it equals
	// len(Indices) unless the batch is padded.
	Valid int
	// C, H and W are the shape of each view in the batch.
	C, H, W int
	// Views[v] holds view v of every sample: len(Indices)×C×H×W values in
	// NCHW order.
	Views [2][]float32
}

// Len is the number of samples in the batch, padding included.
func (b *Batch) Len() int { return len(b.Indices) }

// StepMetrics is what one training step reports: the element that the
// optimize stage hands to the sinks (metrics log, progress display,
// checkpoints).
type StepMetrics struct {
	// Step is the global step, from 0; Epoch the epoch it belongs to.
	Step  int64 `json:"step"`
	Epoch int   `json:"epoch"`
	// Samples is the number of real samples the step trained on.
	Samples int `json:"samples"`
	// Loss is the step's loss.
	Loss float64 `json:"loss"`
	// LR is the learning rate the step used.
	LR float64 `json:"lr"`
	// Momentum is the key encoder's momentum (MoCo), 0 otherwise.
	Momentum float64 `json:"momentum,omitempty"`
	// PosCos and NegCos are the mean cosine similarity of positive pairs
	// and of negatives.
	PosCos float64 `json:"pos_cos"`
	NegCos float64 `json:"neg_cos"`
	// Alignment is E‖z₁−z₂‖² over positive pairs of L2-normalised
	// embeddings, and Uniformity log E exp(−2‖zᵢ−zⱼ‖²) over the batch's
	// pairs (Wang and Isola, 2020): lower is better for both.
	Alignment  float64 `json:"alignment"`
	Uniformity float64 `json:"uniformity"`
	// Accuracy is the fraction of the step's samples whose largest logit
	// is their label, for a loss of one view that classifies
	// (crossentropy: a fine-tune), whose cosines, alignment and
	// uniformity are 0; 0, and left out, for the contrastive losses.
	Accuracy float64 `json:"accuracy,omitempty"`
	// SamplesPerSec is the step's throughput (samples, not views).
	SamplesPerSec float64 `json:"samples_per_s"`
	// Seconds is the step's wall time.
	Seconds float64 `json:"seconds"`
	// State, when not nil, is the training state as the step left it,
	// for the sinks that asked for one this step (a checkpoint, a kNN
	// evaluation); nil on most steps. It is shared by every sink and
	// read-only.
	State *StepState `json:"-"`
}

// StepState is a read-only copy of a training job's state between two
// steps, taken by the optimize stage for the sinks that need more than a
// step's figures. Its tensors are copies: training goes on while sinks
// read them, and no sink may modify them.
type StepState struct {
	// Steps is the number of steps taken when the copy was made.
	Steps int64
	// Model holds what a frozen encoder needs (its parameters and
	// BatchNorm statistics), by name; State the rest of the training
	// state (a momentum encoder, the optimizer's moments, a queue).
	Model, State map[string]Tensor
}

// StateWanter is implemented by a sink stage that needs the training
// state after some steps: a training flow's optimize stage calls
// WantsState between steps, with the number of steps taken, and hands the
// sinks a StepState in that step's StepMetrics when a sink wants it. It
// is called on the optimize stage's goroutine and should be quick.
type StateWanter interface {
	WantsState(steps int64) bool
}

// Tensor is a named float32 array of a StepState: Data holds the product
// of Shape's values, row-major.
type Tensor struct {
	Shape []int
	Data  []float32
}

// Encoded is a batch after the encode stage, on its way through the
// training step: encode fills Z, the queue stage (MoCo) Queue, the loss
// stage Grad and the loss figures of Metrics, and the optimize stage
// back-propagates Grad, steps, and runs AfterStep.
//
// Only one Encoded is in the training step at a time: encode waits for the
// optimize stage to finish the previous step before it runs the next
// forward pass (the weights change between steps), while the data stages
// before it keep preparing batches.
type Encoded struct {
	// Batch is the batch the embeddings are of.
	Batch *Batch
	// N is the number of samples (Batch.Len()) and D the embedding size.
	N, D int
	// Z[v] holds the N×D embeddings of view v (not normalised). For MoCo
	// Z[0] are the queries and Z[1] the keys of the momentum encoder.
	Z [2][]float32
	// Grad[v] is dL/dZ[v], N×D, set by the loss stage; an empty Grad[v]
	// means no gradient flows to view v (MoCo's keys).
	Grad [2][]float32
	// Queue holds K×D negatives (MoCo), set by the queue stage.
	Queue []float32
	K     int
	// Metrics is the step's report, filled in by the stages in turn.
	Metrics StepMetrics
	// AfterStep runs, in order, once the optimizer has stepped (the MoCo
	// queue pushes the step's keys this way).
	AfterStep []func() error
}
