package collate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/contrastream/contrastream/pipeline"
)

// pair makes a C×H×W pair whose values encode (epoch, index, view).
func pair(epoch int, index int64, c, h, w int) pipeline.Pair {
	p := pipeline.Pair{Index: index, Label: index % 10, Epoch: epoch}
	for v := range p.Views {
		d := make([]float32, c*h*w)
		for i := range d {
			d[i] = float32(epoch*100000) + float32(index)*10 + float32(v) + float32(i)/1000
		}
		p.Views[v] = pipeline.View{C: c, H: h, W: w, Data: d}
	}
	return p
}

// epochs makes sizes[e] pairs for each epoch e, indices shuffled per epoch.
func epochs(sizes ...int) []any {
	var out []any
	for e, n := range sizes {
		for i := range n {
			out = append(out, pair(e, int64((i*7+e)%n), 2, 3, 2))
		}
	}
	return out
}

// run drives the stage by hand.
func run(t *testing.T, cfg Config, in []any) ([]*pipeline.Batch, error) {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	inCh, outCh := make(chan any, len(in)), make(chan any, 1)
	for _, v := range in {
		inCh <- v
	}
	close(inCh)
	errc := make(chan error, 1)
	go func() {
		errc <- c.Stage().Run(context.Background(), pipeline.NewInbox(inCh, nil), pipeline.NewOutbox(outCh, nil))
		close(outCh)
	}()
	var out []*pipeline.Batch
	for v := range outCh {
		out = append(out, v.(*pipeline.Batch))
	}
	return out, <-errc
}

func TestBatches(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   Config
		sizes []int
		// want lists each batch as "epoch:valid", in order.
		want []string
	}{
		{"drop", Config{BatchSize: 4}, []int{10, 7}, []string{"0:4", "0:4", "1:4"}},
		{"pad", Config{BatchSize: 4, Last: Pad}, []int{10, 7}, []string{"0:4", "0:4", "0:2", "1:4", "1:3"}},
		{"exact", Config{BatchSize: 5, Last: Pad}, []int{10, 5}, []string{"0:5", "0:5", "1:5"}},
		{"epoch smaller than a batch, pad", Config{BatchSize: 8, Last: Pad}, []int{3, 2}, []string{"0:3", "1:2"}},
		{"epoch smaller than a batch, drop", Config{BatchSize: 8}, []int{3, 2}, nil},
		{"default size", Config{}, []int{600}, []string{"0:256", "0:256"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := epochs(tc.sizes...)
			out, err := run(t, tc.cfg, in)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, b := range out {
				got = append(got, fmt.Sprintf("%d:%d", b.Epoch, b.Valid))
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("batches %v, want %v", got, tc.want)
			}
			size := tc.cfg.BatchSize
			if size == 0 {
				size = DefaultBatchSize
			}
			want := expect(in, size, tc.cfg.Last == Pad)
			if len(want) != len(out) {
				t.Fatalf("%d batches, want %d", len(out), len(want))
			}
			for s, b := range out {
				if b.Step != int64(s) {
					t.Fatalf("batch %d has Step %d", s, b.Step)
				}
				if b.Len() != size || len(b.Labels) != size || b.C != 2 || b.H != 3 || b.W != 2 ||
					len(b.Views[0]) != size*12 || len(b.Views[1]) != size*12 {
					t.Fatalf("batch %d: %d samples of %d×%d×%d, views of %d/%d values",
						s, b.Len(), b.C, b.H, b.W, len(b.Views[0]), len(b.Views[1]))
				}
				for k, p := range want[s] {
					if b.Indices[k] != p.Index || b.Labels[k] != p.Label {
						t.Fatalf("batch %d sample %d: index %d label %d, want %d %d",
							s, k, b.Indices[k], b.Labels[k], p.Index, p.Label)
					}
					for v := range 2 {
						got := b.Views[v][k*12 : (k+1)*12]
						for i := range got {
							if got[i] != p.Views[v].Data[i] {
								t.Fatalf("batch %d sample %d view %d value %d: %v, want %v",
									s, k, v, i, got[i], p.Views[v].Data[i])
							}
						}
					}
				}
			}
		})
	}
}

// expect is the batching spelled out: each epoch's pairs in order, in
// chunks of size; a short last chunk dropped, or padded with the epoch's
// first pairs (at most size−1 of them, cyclically).
func expect(in []any, size int, pad bool) [][]pipeline.Pair {
	var byEpoch [][]pipeline.Pair
	for _, v := range in {
		p := v.(pipeline.Pair)
		if len(byEpoch) == 0 || byEpoch[len(byEpoch)-1][0].Epoch != p.Epoch {
			byEpoch = append(byEpoch, nil)
		}
		byEpoch[len(byEpoch)-1] = append(byEpoch[len(byEpoch)-1], p)
	}
	var out [][]pipeline.Pair
	for _, ps := range byEpoch {
		for i := 0; i < len(ps); i += size {
			chunk := append([]pipeline.Pair(nil), ps[i:min(i+size, len(ps))]...)
			if len(chunk) < size {
				if !pad {
					continue
				}
				first := ps[:min(size-1, len(ps))]
				for j := 0; len(chunk) < size; j++ {
					chunk = append(chunk, first[j%len(first)])
				}
			}
			out = append(out, chunk)
		}
	}
	return out
}

func TestPadCopiesEpochStart(t *testing.T) {
	in := epochs(6)
	out, err := run(t, Config{BatchSize: 4, Last: Pad}, in)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[1].Valid != 2 {
		t.Fatalf("%d batches, last Valid %d", len(out), out[len(out)-1].Valid)
	}
	first := in[0].(pipeline.Pair).Index
	second := in[1].(pipeline.Pair).Index
	if got := out[1].Indices; got[2] != first || got[3] != second {
		t.Fatalf("padding %v, want copies of %d and %d", got, first, second)
	}
}

func TestShapeMismatch(t *testing.T) {
	for _, tc := range []struct {
		name string
		bad  pipeline.Pair
		want string
	}{
		{"size", pair(0, 42, 2, 4, 4), "sample 42 (epoch 0): view 0 is 2×4×4 (C×H×W), but the batch is 2×3×2"},
		{"channels", pair(0, 43, 1, 3, 2), "sample 43 (epoch 0): view 0 is 1×3×2"},
		{"views disagree", func() pipeline.Pair {
			p := pair(0, 44, 2, 3, 2)
			p.Views[1] = pair(0, 44, 3, 3, 2).Views[1]
			return p
		}(), "sample 44 (epoch 0): view 1 is 3×3×2"},
		{"short data", func() pipeline.Pair {
			p := pair(0, 45, 2, 3, 2)
			p.Views[0].Data = p.Views[0].Data[:5]
			return p
		}(), "sample 45 (epoch 0): view 0 has 5 values"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := append(epochs(5), tc.bad)
			_, err := run(t, Config{BatchSize: 2}, in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestElementTypes(t *testing.T) {
	p := pair(0, 1, 1, 2, 2)
	out, err := run(t, Config{BatchSize: 2}, []any{p, &p})
	if err != nil || len(out) != 1 {
		t.Fatalf("Pair and *Pair: %d batches, %v", len(out), err)
	}
	_, err = run(t, Config{BatchSize: 2}, []any{p, "hello"})
	if err == nil || !strings.Contains(err.Error(), "string") {
		t.Fatalf("a string: err = %v", err)
	}
}

func TestBatchesAreNotShared(t *testing.T) {
	out, err := run(t, Config{BatchSize: 2}, epochs(6))
	if err != nil {
		t.Fatal(err)
	}
	out[0].Views[0][0] = -1
	out[0].Indices[0] = -1
	for _, b := range out[1:] {
		if &b.Views[0][0] == &out[0].Views[0][0] || &b.Indices[0] == &out[0].Indices[0] {
			t.Fatal("two batches share storage")
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg   Config
		field string
	}{
		{Config{BatchSize: -1}, "batch_size"},
		{Config{BatchSize: MaxBatchSize + 1}, "batch_size"},
		{Config{BatchSize: 1 << 40}, "batch_size"},
		{Config{Last: "keep"}, "last"},
	} {
		err := tc.cfg.Validate()
		var fe *pipeline.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field || !strings.HasPrefix(err.Error(), tc.field+": ") {
			t.Errorf("%+v: err = %v, want one naming %s", tc.cfg, err, tc.field)
		}
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("New(%+v): err = %v", tc.cfg, err)
		}
	}
	c, err := New(Config{})
	if err != nil || c.BatchSize() != 256 || c.pad {
		t.Fatalf("zero Config: %v, %+v", err, c)
	}
	if c, err := New(Config{BatchSize: MaxBatchSize}); err != nil || c.BatchSize() != MaxBatchSize {
		t.Fatalf("BatchSize %d: %v", MaxBatchSize, err)
	}
}

// TestBatchValuesLimit: a batch that would hold more than MaxBatchValues
// values per view is a fatal error at the first pair, before anything is
// allocated; one just within the limit is not refused.
func TestBatchValuesLimit(t *testing.T) {
	// 2^20 samples × 1×64×64 = 2^32 values per view: 16 GiB.
	_, err := run(t, Config{BatchSize: MaxBatchSize}, []any{pair(0, 3, 1, 64, 64)})
	if err == nil || !strings.Contains(err.Error(), "lower batch_size") || !strings.Contains(err.Error(), "16.0 GiB") {
		t.Fatalf("err = %v, want one saying the batch is too large", err)
	}
	c, err := New(Config{BatchSize: MaxBatchSize})
	if err != nil {
		t.Fatal(err)
	}
	st := &state{c: c, epoch: -1}
	if err := st.checkShape(pair(0, 3, 1, 32, 64)); err != nil { // 2^31 values: at the limit
		t.Fatalf("2^31 values: %v", err)
	}
}

func BenchmarkCollate(b *testing.B) {
	for _, bc := range []struct {
		name    string
		c, h, w int
	}{{"28x28-gray", 1, 28, 28}, {"224-rgb", 3, 224, 224}} {
		b.Run(bc.name, func(b *testing.B) {
			const batch = 64
			c, err := New(Config{BatchSize: batch})
			if err != nil {
				b.Fatal(err)
			}
			p := pair(0, 1, bc.c, bc.h, bc.w)
			inCh, outCh := make(chan any, 64), make(chan any, 4)
			b.SetBytes(int64(2 * 4 * bc.c * bc.h * bc.w))
			b.ReportAllocs()
			b.ResetTimer()
			go func() {
				defer close(inCh)
				for range b.N {
					inCh <- p
				}
			}()
			errc := make(chan error, 1)
			go func() {
				errc <- c.Stage().Run(context.Background(), pipeline.NewInbox(inCh, nil), pipeline.NewOutbox(outCh, nil))
				close(outCh)
			}()
			for range outCh {
			}
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
		})
	}
}
