// Package queue holds MoCo's two pieces of state besides the query
// encoder: the FIFO queue of keys whose entries are the negatives of the
// InfoNCE loss, and the momentum ("key") encoder's update.
//
// The queue holds K keys of dimension D, initially random unit vectors.
// Each step the loss reads the queue as it is (Keys), then the step's keys
// are pushed, overwriting the oldest, as torch_reference.py does:
//
//	ptr = 2, K = 5         [k0 k1 k2 k3 k4]        (k2 is the oldest)
//	Push(a b c d)          [c  d  a  b  k4]  ptr = (2 + 4) mod 5 = 1
//	Ordered()              [k4 a  b  c  d ]        (oldest → newest)
//
// K need not be a multiple of the batch size: the write position wraps.
//
// The key encoder's weights ξ follow the query encoder's θ after each
// optimizer step: ξ ← m·ξ + (1−m)·θ (MomentumUpdate, MomentumUpdateParams),
// with m constant (0.99 by default) or rising to 1 on BYOL's cosine
// schedule (Momentum). The key encoder starts as a copy of the query
// encoder (CopyParams) and gets no gradient.
//
// Nothing here is safe for concurrent use; the optimize stage updates the
// queue and the key encoder between steps, while no replica reads them.
package queue
