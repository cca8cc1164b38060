package flows_test

import (
	"context"
	"fmt"
	"log"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/contrastream/contrastream/flows"
	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/stages/loss"
)

// A method's loss written in Go is one file like this one: its Compute
// and its registration (see stages/loss, "Adding a loss"). "alignment"
// is a toy: the mean squared distance of the L2-normalised positive
// pairs, L = (1/n) Σ_i (2 − 2 ẑ1_i·ẑ2_i), with its closed-form gradient
// through the normalisation. It has no temperature and needs nothing
// beyond the embeddings (no labels, no queue), so any flow can use it.
func init() {
	loss.Register(loss.Kind{
		Name: "alignment",
		Doc:  "mean squared distance of the normalised positive pairs (a toy: no negatives)",
		New:  func(loss.Config) (loss.Loss, error) { return alignment{name: "alignment"}, nil },
	})
	// For TestRegisteredLossNeeds: alignment, declaring needs it does not
	// use.
	for _, kd := range []loss.Kind{
		{Name: "alignment-labels", Needs: loss.Needs{Labels: true}},
		{Name: "alignment-queue", Needs: loss.Needs{Queue: true}},
	} {
		name := kd.Name
		kd.Doc = "alignment, declaring a need it does not use (a test)"
		kd.New = func(loss.Config) (loss.Loss, error) { return alignment{name: name}, nil }
		loss.Register(kd)
	}
}

type alignment struct{ name string }

func (a alignment) Name() string { return a.name }

// Compute implements loss.Loss: dL/dz1_i = 2/(n‖z1_i‖)·(c_i ẑ1_i − ẑ2_i),
// and likewise for z2_i; padding rows get no gradient.
func (a alignment) Compute(in loss.Inputs, out *loss.Outputs) error {
	if err := in.Check(a.name); err != nil {
		return err
	}
	n, d, rows := in.N, in.D, in.ValidN()
	for v := range 2 {
		if cap(out.Grad[v]) < n*d {
			out.Grad[v] = make([]float32, n*d)
		}
		out.Grad[v] = out.Grad[v][:n*d]
		clear(out.Grad[v])
	}
	norm := func(x []float32) float64 {
		var ss float64
		for _, v := range x {
			ss += float64(v) * float64(v)
		}
		return math.Max(math.Sqrt(ss), 1e-12)
	}
	var sum, cosSum float64
	for i := range rows {
		z1, z2 := in.Z[0][i*d:(i+1)*d], in.Z[1][i*d:(i+1)*d]
		n1, n2 := norm(z1), norm(z2)
		var c float64
		for j := range d {
			c += float64(z1[j]) / n1 * float64(z2[j]) / n2
		}
		sum, cosSum = sum+2-2*c, cosSum+c
		s := 2 / float64(rows)
		for j := range d {
			h1, h2 := float64(z1[j])/n1, float64(z2[j])/n2
			out.Grad[0][i*d+j] = float32(s / n1 * (c*h1 - h2))
			out.Grad[1][i*d+j] = float32(s / n2 * (c*h2 - h1))
		}
	}
	out.Loss, out.PosCos = sum/float64(rows), cosSum/float64(rows)
	out.NegCos, out.Top1, out.Anchors = 0, 0, rows
	return nil
}

// A registered loss is a flow's loss type like the built-in ones: here
// the small simclr flow (40 images, batches of 8) trains with
// "alignment" in place of ntxent, its temperature left out (alignment
// has none).
func Example_method() {
	spec, err := flows.Load("simclr", []string{
		"source.path=builtin:test", "source.shards=50", "epochs=1",
		"stages.augment.size=16", "stages.collate.batch_size=8", "stages.encode.hidden=16", "stages.encode.out=16",
		"sinks.knn.every=0",
		"stages.loss.type=alignment", "stages.loss.temperature=",
	})
	if err != nil {
		log.Fatal(err)
	}
	job, err := flows.Prepare(spec, pipeline.Options{}, flows.JobOptions{})
	if err != nil {
		log.Fatal(err)
	}
	if err := job.Run(context.Background()); err != nil {
		log.Fatal(err)
	}
	m := job.Last()
	fmt.Printf("%d steps; last loss finite: %v, within [0, 4]: %v\n",
		job.Steps(), !math.IsNaN(m.Loss) && !math.IsInf(m.Loss, 0), m.Loss >= 0 && m.Loss <= 4)
	fmt.Println("negative cosine:", m.NegCos) // alignment has no negatives
	// Output:
	// 5 steps; last loss finite: true, within [0, 4]: true
	// negative cosine: 0
}

// The training flows check what a registered loss needs (loss.Needs), not
// its name: one that needs labels or a queue is refused, with an error
// that names it, by a flow that cannot provide them, and accepted by one
// that can. The way out the errors suggest lists the losses that need
// nothing, alignment now among them.
func TestRegisteredLossNeeds(t *testing.T) {
	dir := t.TempDir()
	unlabeled := filepath.Join(dir, "unlabeled.parquet")
	writeTinyDataset(t, unlabeled, 16, false)
	noTemp := "stages.loss.temperature="
	for _, tc := range []struct {
		name, flow string
		sets       []string
		want       string // "" for a flow that prepares
	}{
		{"labels, unlabelled source", "simclr", tinySets("simclr", "source.path="+unlabeled, "source.shards=1", "stages.loss.type=alignment-labels", noTemp),
			"alignment-labels needs labels, and the source's dataset has none: use a labelled dataset (a Parquet or Arrow label column: source.label_column; IDX labels: source.labels; an image folder's sub-folders), or an unsupervised loss (type: alignment or ntxent)"},
		{"labels, labelled source", "simclr", tinySets("simclr", "stages.loss.type=alignment-labels", noTemp), ""},
		{"queue, no queue stage", "simclr", tinySets("simclr", "stages.loss.type=alignment-queue", noTemp),
			"alignment-queue takes its negatives from a queue: put a queue stage (after an encode stage with key_encoder: true) before the loss, or use type: alignment or ntxent"},
		{"queue, queue stage", "moco", tinySets("moco", "stages.loss.type=alignment-queue", noTemp), ""},
		{"temperature", "simclr", tinySets("simclr", "stages.loss.type=alignment"), "loss alignment has no temperature: leave it out, got 0.5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := flows.Load(tc.flow, tc.sets)
			if err == nil {
				_, err = flows.Prepare(spec, pipeline.Options{}, flows.JobOptions{})
			}
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Prepare: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want one that says %q", err, tc.want)
			}
		})
	}
}
