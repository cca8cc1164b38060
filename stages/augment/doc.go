// Package augment makes the two augmented views of every sample: the
// positive pair of contrastive learning.
//
//	in  -- Sample(s1) -- Sample(s2) -- Sample(bad) -- Sample(s3) --
//	[ decode, then view 0 and view 1, on Config.Workers goroutines ]
//	out -------- Pair(s1) ---- Pair(s2) ----------------- Pair(s3)
//	             (bad is skipped and counted; order is kept)
//
// A view is, in this order: a random resized crop (torchvision's
// RandomResizedCrop), resized bilinearly to Size×Size (antialiased when
// shrinking); a horizontal flip; a rotation; colour jitter (brightness,
// contrast, saturation, hue); grayscale; Gaussian blur; solarize; and
// normalisation to float32 CHW, (x − mean) / std. The zero Config is the
// recipe of the PyTorch reference, cmd/reference/torch_reference.py in this
// repository: crop of area 0.3–1, flip p = 0.5, brightness and contrast
// factors U(0.6, 1.4) always, mean 0.286 and std 0.353; everything else
// off.
//
// # Determinism
//
// A view's random parameters derive only from (seed, epoch, sample index,
// view number): the four are hashed with SplitMix64 into the seeds of
// math/rand/v2 PCG streams, one stream per transform. A view is therefore
// the same whichever worker makes it and whenever, the stage's output is
// bit-identical for any worker count, and switching one transform on or off
// leaves the parameters of the others unchanged.
//
// # Implementation
//
// Images are converted once per sample to float32 planes in [0, 1]; both
// views are made from those planes with this package's own kernels: crop
// and resize in one separable pass pair (the flip folded into the
// horizontal weights), brightness and contrast folded into the final
// normalisation pass. github.com/disintegration/imaging is not used:
// v1.6.2 has no SetMaxProcs and starts GOMAXPROCS goroutines in every call,
// which fights the worker pool, and it works on 8-bit NRGBA, rounding after
// every step. Measured on 2 shared cores, it was 4.6–7× slower on 28×28
// views and 2–6× slower on 224×224 views (BenchmarkImagingBaseline against
// BenchmarkAugment, 1 and 2 workers).
//
// Differences from torchvision and the reference, all small: the jitter's
// order is fixed (torchvision shuffles it) and brightness and contrast clip
// once, after both (as the reference does); the reference crops with
// continuous coordinates through grid_sample and clamps an oversized box,
// where this package, like torchvision, crops whole pixels and redraws;
// rotation samples bilinearly (torchvision's default is nearest); the blur's
// radius is ⌈3σ⌉, at most the view's side − 1 (torchvision takes a fixed
// kernel size, and its reflect padding allows no more).
//
// # Limits
//
// Config.Validate bounds every value that sets a size or a cost (MaxSize,
// MaxSigma, MaxWorkers, MaxMaxPixels), so that a typo in a flow file or a
// --set cannot ask for a 60 GB view or a million-tap kernel. With the
// default Size (each image's shorter side), an image whose shorter side is
// over MaxSize is skipped and counted like an undecodable one, with a
// message that says to set size: one such photo should not stop a run, and
// a dataset made of them ends it through the flow's limit of bad samples.
//
// # Ownership
//
// An Augmenter is safe for concurrent use. View writes into its dst,
// reusing dst.Data; Pair and the stage allocate each Pair's views anew
// (both views share one allocation), and the receiver owns them.
package augment
