// Package eval judges a frozen encoder by what its features do downstream.
// It works on feature matrices (Features) and knows no model: the flows
// package encodes the images.
//
// KNN is the weighted k-nearest-neighbour monitor of InstDisc and MoCo's
// demo: L2-normalised features, the training split as memory, the test split
// as queries, the k most similar by cosine, each voting for its label with
// weight exp(sim/T).
//
// Linear is the linear probe of the PyTorch reference (linear_probe_acc in
// cmd/reference/torch_reference.py): features standardised with the
// training split's mean and standard deviation (Standardize), a softmax
// regression trained full-batch by Adam (lr 0.01, L2 1e-4), top-1 on the
// test split. It runs until the training loss has converged (see
// LinearTolerance; at most MaxLinearIterations), or for a fixed
// LinearConfig.Iterations (the reference's 300 to compare with it). It is
// deterministic for a seed and does not depend on the number of workers. CrossEntropy is its loss and gradient,
// also used to fine-tune an encoder with a classifier.
package eval
