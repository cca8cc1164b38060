package flows

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sources"
)

// Feature extraction gives the same features on 1 and 3 replicas, and a
// panic in a replica, whichever batch it hits, comes back from featuresOf
// as an error with the stack, not a crash: the producer stops, the other
// replicas end, and no goroutine is left behind.
func TestKNNFeaturesReplicaPanic(t *testing.T) {
	spec, err := Load("simclr", []string{"stages.augment.size=16", "stages.encode.hidden=16", "stages.encode.out=16"})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := NewEncoder(spec)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := OpenDataset(sources.Config{Path: BuiltinTest})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	sc := sources.StreamConfig{Shards: 5} // 400 samples: 4 batches
	ctx := context.Background()
	want, err := featuresOf(ctx, enc.Weights, ds, sc, enc.Augment, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want.N != 400 {
		t.Fatalf("%d samples, want 400", want.N)
	}
	for _, workers := range []int{1, 3} {
		got, err := featuresOf(ctx, enc.Weights, ds, sc, enc.Augment, workers, nil)
		if err != nil || got.N != want.N || !slices.Equal(got.Data, want.Data) || !slices.Equal(got.Labels, want.Labels) {
			t.Errorf("%d replicas: %d features (%v), not those of 1", workers, got.N, err)
		}
		for _, bad := range []int{1, 4} { // the first batch, the last
			before := runtime.NumGoroutine()
			var seen atomic.Int64
			testHookReplica = func(int) {
				if seen.Add(1) == int64(bad) {
					panic("replica broke")
				}
			}
			_, err := featuresOf(ctx, enc.Weights, ds, sc, enc.Augment, workers, nil)
			testHookReplica = nil
			var pe *pipeline.PanicError
			if !errors.As(err, &pe) || pe.Value != "replica broke" || !strings.Contains(string(pe.Stack), "flows.featuresOf") {
				t.Fatalf("%d replicas, batch %d: err %v, want a *pipeline.PanicError with the stack", workers, bad, err)
			}
			for deadline := time.Now().Add(time.Second); runtime.NumGoroutine() > before && time.Now().Before(deadline); {
				time.Sleep(5 * time.Millisecond)
			}
			if n := runtime.NumGoroutine(); n > before {
				t.Errorf("%d replicas: %d goroutines after featuresOf, %d before", workers, n, before)
			}
		}
	}
}
