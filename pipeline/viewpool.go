package pipeline

// viewBufs holds pixel buffers of views that their last reader has handed
// back: the augmentation stage takes its views' buffers from it and the
// collate stage returns them once it has copied them into a batch. At
// 28×28 a pair's two views are 6 KB, made and dropped at 100,000 pairs a
// second: as garbage, they kept the collector so busy that a second
// augmentation worker added 41% instead of 2×. A channel is the free list
// (sending a slice through it allocates nothing, unlike sync.Pool.Put).
var viewBufs = make(chan []float32, 4096)

// ViewData returns a buffer of n values for a view's Data: a recycled one
// when one of that capacity is free, else a new one. Its values are
// undefined: the caller overwrites all of them.
func ViewData(n int) []float32 {
	select {
	case b := <-viewBufs:
		if cap(b) >= n {
			return b[:n]
		}
	default:
	}
	return make([]float32, n)
}

// RecycleView hands d, a view's Data, back for ViewData to reuse. Only the
// last reader of a view may call it, and must not touch d afterwards: the
// collate stage does, after copying a Pair's views into its batch (a Pair
// belongs to the one stage that receives it).
func RecycleView(d []float32) {
	if cap(d) == 0 {
		return
	}
	select {
	case viewBufs <- d:
	default: // full: let the collector have it
	}
}
