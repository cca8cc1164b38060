package collate

import (
	"context"
	"testing"

	"github.com/contrastream/contrastream/pipeline"
)

// drainViews empties the free list of view buffers and returns what it
// held, by buffer.
func drainViews() map[*float32]int {
	held := map[*float32]int{}
	for {
		b := pipeline.ViewData(0)
		if cap(b) == 0 {
			return held
		}
		held[&b[:cap(b)][0]]++
	}
}

// value is the v-th value of view view of sample index in epoch.
func value(epoch int, index int64, view, i int) float32 {
	return float32(epoch*100000) + float32(index)*10 + float32(view) + float32(i)/1000
}

// TestPadReadsItsOwnPixels feeds the stage as the augmentation stage does,
// each pair's views in buffers from pipeline.ViewData, in lock step: the
// pairs of a batch go in only once the batch before has come out, so that
// they take the buffers that batch's pairs were recycled into. The padded
// rows of each epoch's last batch must still hold the pixels of the epoch's
// first samples, and the free list must end up without a buffer twice.
func TestPadReadsItsOwnPixels(t *testing.T) {
	const size, c, h, w = 4, 2, 3, 2
	const n = c * h * w
	sizes := []int{10, 7}
	drainViews()
	col, err := New(Config{BatchSize: size, Last: Pad})
	if err != nil {
		t.Fatal(err)
	}
	inCh, outCh := make(chan any), make(chan any, 16)
	errc := make(chan error, 1)
	go func() {
		errc <- col.Stage().Run(context.Background(), pipeline.NewInbox(inCh, nil), pipeline.NewOutbox(outCh, nil))
		close(outCh)
	}()
	send := func(epoch int, index int64) {
		p := pipeline.Pair{Index: index, Label: index % 10, Epoch: epoch}
		for v := range p.Views {
			d := pipeline.ViewData(n)
			for i := range d {
				d[i] = value(epoch, index, v, i)
			}
			p.Views[v] = pipeline.View{C: c, H: h, W: w, Data: d}
		}
		inCh <- p
	}
	var got []*pipeline.Batch
	recv := func() { got = append(got, (<-outCh).(*pipeline.Batch)) }
	for e, m := range sizes {
		for i := range m {
			send(e, int64(i))
			if e > 0 && i == 0 {
				recv() // the last epoch's padded batch
			}
			if (i+1)%size == 0 {
				recv()
			}
		}
	}
	close(inCh)
	recv() // the last epoch's padded batch
	for range outCh {
		t.Fatal("more batches than expected")
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}

	// Epoch 0: 0-3, 4-7, 8 9 0 1; epoch 1: 0-3, 4 5 6 0.
	want := [][]int64{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9, 0, 1}, {0, 1, 2, 3}, {4, 5, 6, 0}}
	if len(got) != len(want) {
		t.Fatalf("%d batches, want %d", len(got), len(want))
	}
	for s, b := range got {
		for k, index := range want[s] {
			if b.Indices[k] != index {
				t.Fatalf("batch %d row %d: index %d, want %d", s, k, b.Indices[k], index)
			}
			for v := range b.Views {
				for i, x := range b.Views[v][k*n : (k+1)*n] {
					if y := value(b.Epoch, index, v, i); x != y {
						t.Fatalf("batch %d (epoch %d, valid %d) row %d, sample %d, view %d, value %d: %v, want %v: the pixels of another sample",
							s, b.Epoch, b.Valid, k, index, v, i, x, y)
					}
				}
			}
		}
	}
	for b, k := range drainViews() {
		if k > 1 {
			t.Errorf("buffer %p is on the free list %d times", b, k)
		}
	}
}

// TestRecyclesEachBufferOnce runs the stage, padding, over pairs of its own
// buffers and counts what the free list holds afterwards: each view buffer
// of every pair, once, the padding pairs' too.
func TestRecyclesEachBufferOnce(t *testing.T) {
	for _, cfg := range []Config{{BatchSize: 4, Last: Pad}, {BatchSize: 4}, {BatchSize: 5, Last: Pad}, {BatchSize: 8, Last: Pad}} {
		drainViews()
		in := epochs(10, 7, 3)
		if _, err := run(t, cfg, in); err != nil {
			t.Fatal(err)
		}
		held := drainViews()
		for _, x := range in {
			p := x.(pipeline.Pair)
			for v, view := range p.Views {
				if k := held[&view.Data[0]]; k != 1 {
					t.Errorf("%+v: epoch %d sample %d view %d: its buffer is on the free list %d times, want once",
						cfg, p.Epoch, p.Index, v, k)
				}
			}
		}
		if len(held) != 2*len(in) {
			t.Errorf("%+v: %d buffers on the free list, want the %d of the pairs", cfg, len(held), 2*len(in))
		}
	}
}
