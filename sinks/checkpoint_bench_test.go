package sinks

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/contrastream/contrastream/sinks/safetensors"
)

// BenchmarkWriteCheckpoint times a whole checkpoint write (three files,
// fsyncs, two renames) at the sizes of the moco flow's convnet-s
// checkpoint (3.6 MB: weights, key encoder, SGD momenta, a queue of 4,096
// keys) and of ResNet-18's (137 MB). The checkpoint sink's timer waits at
// least 50 such writes between two, so writing costs at most 2% of the
// training time.
func BenchmarkWriteCheckpoint(b *testing.B) {
	for _, mb := range []int{4, 137} {
		b.Run(fmt.Sprintf("%dMB", mb), func(b *testing.B) {
			n := mb << 20 / 4 / 4 // four tensors of float32
			ck := Checkpoint{Model: map[string]safetensors.Tensor{}, State: map[string]safetensors.Tensor{}, Info: CheckpointInfo{Step: 1, Flow: "name: moco\n"}}
			for i, m := range []map[string]safetensors.Tensor{ck.Model, ck.State, ck.State, ck.State} {
				v := make([]float32, n)
				for j := range v {
					v[j] = float32(j%1000) / 1000
				}
				m[fmt.Sprintf("t%d", i)] = safetensors.Tensor{Shape: []int{n}, F32: v}
			}
			dir := filepath.Join(b.TempDir(), "checkpoint")
			b.SetBytes(int64(4 * 4 * n))
			for b.Loop() {
				if err := WriteCheckpoint(dir, ck); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
