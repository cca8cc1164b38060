// Package collate groups the stream of pairs into fixed-shape batches, as
// the encoder's graphs need:
//
//	in  -- Pair -- Pair -- … -- Pair (epoch e, BatchSize of them) -- …
//	out ---------------------- *Batch{Step, Indices, Labels, Views[2]} -- …
//
// Views[v] of a batch holds view v of its samples back to back in NCHW
// order. An epoch's last batch, when short, is dropped ("drop", the
// default, as torch_reference.py does) or padded with copies of the
// epoch's first samples ("pad"; Batch.Valid counts the real ones). Batches
// never straddle epochs, and Step counts them from 0 over the whole run.
package collate
