// Package report draws a training run's report: line plots of the step
// metrics, 2-D maps of embeddings (PCA, exact t-SNE), a retrieval grid, and one HTML
// page that holds them all as data URIs, so that the page alone (copied,
// mailed, attached to an issue) shows everything.
//
// It only draws: package flows gathers what a run wrote (metrics.jsonl,
// eval.jsonl, the checkpoint) and computes the embeddings. Plots are drawn
// with gonum.org/v1/plot into PNGs; nothing here is safe for concurrent use
// unless a function says so.
package report
