// Package eval judges a frozen encoder by what its features do downstream.
//
// KNN is the weighted k-nearest-neighbour monitor of InstDisc and MoCo's
// demo: L2-normalised features, the training split as memory, the test split
// as queries, the k most similar by cosine, each voting for its label with
// weight exp(sim/T).
package eval
