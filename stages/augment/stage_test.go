package augment

import (
	"context"
	"fmt"
	"image"
	"math"
	"runtime"
	"testing"
	"time"

	"github.com/contrastream/contrastream/pipeline"
)

// samples are n samples cycling over the Fashion-MNIST test images, over
// two epochs, with a bad sample every 50.
func samples(t testing.TB, n int) []pipeline.Sample {
	imgs := make([]image.Image, 4)
	for i := range imgs {
		imgs[i] = fashion(t, i)
	}
	out := make([]pipeline.Sample, n)
	for i := range out {
		out[i] = pipeline.Sample{
			Index:  int64(i % (n / 2)),
			Label:  int64(i % 10),
			Epoch:  i / (n / 2),
			Image:  imgs[i%4],
			Origin: fmt.Sprintf("sample %d", i),
		}
		if i%50 == 49 {
			out[i].Image, out[i].Encoded = nil, []byte("not an image")
		}
	}
	return out
}

// runStage drives st by hand over in and returns what it sends.
func runStage(t testing.TB, st pipeline.Stage, in []pipeline.Sample) ([]pipeline.Pair, int) {
	t.Helper()
	skips := pipeline.NewSkips(-1)
	ctx := pipeline.WithSkips(context.Background(), skips)
	inCh, outCh := make(chan any, 4), make(chan any, 4)
	go func() {
		defer close(inCh)
		for _, s := range in {
			inCh <- s
		}
	}()
	errc := make(chan error, 1)
	go func() {
		errc <- st.Run(ctx, pipeline.NewInbox(inCh, nil), pipeline.NewOutbox(outCh, nil))
		close(outCh)
	}()
	var out []pipeline.Pair
	for v := range outCh {
		out = append(out, v.(pipeline.Pair))
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return out, skips.Count()
}

// TestStageWorkersBitIdentical is the pool test: the stage's output is the
// same, bit for bit and in the same order, for 1 and 8 workers.
func TestStageWorkersBitIdentical(t *testing.T) {
	before := runtime.NumGoroutine()
	in := samples(t, 200)
	cfg := Config{Rotation: RotationConfig{Degrees: [2]float64{-15, 15}}, Blur: BlurConfig{P: 0.3}}
	var runs [2][]pipeline.Pair
	for k, workers := range []int{1, 8} {
		cfg.Workers = workers
		out, skipped := runStage(t, mustNew(t, cfg).Stage(11), in)
		if skipped != 4 || len(out) != 196 {
			t.Fatalf("%d workers: %d pairs, %d skipped; want 196 and 4", workers, len(out), skipped)
		}
		runs[k] = out
	}
	for i := range runs[0] {
		a, b := runs[0][i], runs[1][i]
		if a.Index != b.Index || a.Epoch != b.Epoch || a.Label != b.Label {
			t.Fatalf("pair %d: (%d, %d) vs (%d, %d): order differs", i, a.Epoch, a.Index, b.Epoch, b.Index)
		}
		for v := range 2 {
			x, y := a.Views[v], b.Views[v]
			if x.C != y.C || x.H != y.H || x.W != y.W || len(x.Data) != 784 {
				t.Fatalf("pair %d view %d: shapes %d×%d×%d and %d×%d×%d", i, v, x.C, x.H, x.W, y.C, y.H, y.W)
			}
			for j := range x.Data {
				if math.Float32bits(x.Data[j]) != math.Float32bits(y.Data[j]) {
					t.Fatalf("pair %d view %d value %d: %v with 1 worker, %v with 8", i, v, j, x.Data[j], y.Data[j])
				}
			}
		}
	}
	// Views 0 and 1 differ, and so do epochs 0 and 1 of one sample (the
	// same image: samples i and i+100 share index and image).
	same := func(x, y []float32) bool {
		for j := range x {
			if math.Float32bits(x[j]) != math.Float32bits(y[j]) {
				return false
			}
		}
		return true
	}
	p := runs[0][0]
	if p.Index != 0 || p.Epoch != 0 {
		t.Fatalf("first pair is (epoch %d, index %d), want (0, 0)", p.Epoch, p.Index)
	}
	if same(p.Views[0].Data, p.Views[1].Data) {
		t.Error("the two views of a pair are equal")
	}
	var q *pipeline.Pair
	for i := range runs[0] {
		if r := &runs[0][i]; r.Epoch == 1 && r.Index == p.Index {
			q = r
			break
		}
	}
	if q == nil {
		t.Fatal("no pair for index 0 in epoch 1")
	}
	for v := range 2 {
		if same(p.Views[v].Data, q.Views[v].Data) {
			t.Errorf("view %d of sample 0 is the same in epochs 0 and 1", v)
		}
	}
	deadline := time.Now().Add(time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines left, %d before", n, before)
	}
}
