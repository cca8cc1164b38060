package flows

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/sinks"
	"github.com/contrastream/contrastream/sinks/report"
	"github.com/contrastream/contrastream/sources"
	"github.com/contrastream/contrastream/stages/eval"
	"github.com/contrastream/contrastream/stages/loss"
)

// EvalFile is the run folder's file of kNN monitor results, one JSON line
// per evaluation: {"epoch":E,"step":S,"knn_top1":A,"k":K,"t":T}.
const EvalFile = "eval.jsonl"

// ReportFile is the report page's file name in ReportConfig.Out.
const ReportFile = "report.html"

// ReportConfig says what Report draws. The zero value means the defaults.
type ReportConfig struct {
	// Out is the folder the page (ReportFile) and its PNGs go to. Default
	// RUN_DIR/report.
	Out string
	// Checkpoint is the checkpoint folder of the encoder. Default: the run
	// folder's "checkpoint", or else its one sub-folder holding a
	// state.json.
	Checkpoint string
	// Train and Test are the datasets of the retrieval memory (and the kNN
	// point) and of the map and the queries. Default: the flow's dataset
	// and its test split (TestData); without a test split the report has
	// no map, retrieval or kNN point, and says so.
	Train, Test sources.Config
	// MaxTest and MaxTrain cap the samples encoded of each (evenly spaced
	// over the dataset). Default 2,000 and 10,000.
	MaxTest, MaxTrain int
	// KNN is the kNN point's k and temperature (default 200 and 0.1).
	KNN eval.KNNConfig
	// Queries is the number of rows of the retrieval grid, and Neighbors
	// the neighbours shown in each. Default: a row per class (the first
	// test image of each, up to 12 classes), else 8; and 8 neighbours.
	Queries, Neighbors int
	// TSNE is the number of test images (evenly spaced) of the t-SNE map;
	// its cost grows with the square. Default 1,000; negative: no t-SNE
	// map.
	TSNE int
	// Progress, when set, is called with a phase ("test", "train") and the
	// samples encoded of the total.
	Progress func(phase string, done, total int64)
}

// ReportResult says what Report wrote.
type ReportResult struct {
	// Page is the HTML file; Figures the PNGs beside it.
	Page    string
	Figures []string
	// Steps is the number of metrics lines read.
	Steps int
	// KNN is the kNN top-1 accuracy of the checkpoint, when computed
	// (NaN otherwise).
	KNN float64
	// Notes are what the report could not show, and why.
	Notes []string
}

// evalLine is a line of EvalFile.
type evalLine struct {
	Epoch   float64 `json:"epoch"`
	Step    int64   `json:"step"`
	KNNTop1 float64 `json:"knn_top1"`
	K       int     `json:"k"`
	T       float64 `json:"t"`
}

// Report writes the report of the training run in runDir: loss, learning
// rate, similarities, alignment and uniformity, and throughput over steps
// (from the metrics file); kNN accuracy over epochs (from EvalFile, when
// the run had a kNN monitor) and of the final checkpoint; a PCA map of the
// test set's embeddings coloured by label; and a retrieval grid of test
// images beside their nearest training images. See ReportConfig for what
// it reads.
func Report(ctx context.Context, runDir string, cfg ReportConfig) (ReportResult, error) {
	res := ReportResult{KNN: math.NaN()}
	if st, err := os.Stat(runDir); err != nil {
		return res, fmt.Errorf("report: %w", err)
	} else if !st.IsDir() {
		return res, fmt.Errorf("report: %s is not a run folder", runDir)
	}
	if cfg.Out == "" {
		cfg.Out = filepath.Join(runDir, "report")
	}
	cfg.MaxTest = defaultInt(cfg.MaxTest, 2000)
	cfg.MaxTrain = defaultInt(cfg.MaxTrain, 10000)
	cfg.Neighbors = defaultInt(cfg.Neighbors, 8)
	if err := cfg.KNN.Validate(); err != nil {
		return res, err
	}
	note := func(format string, a ...any) { res.Notes = append(res.Notes, fmt.Sprintf(format, a...)) }

	// The encoder and its flow.
	ckDir := cfg.Checkpoint
	if ckDir == "" {
		var err error
		if ckDir, err = findCheckpoint(runDir); err != nil {
			return res, err
		}
	}
	enc, err := LoadEncoder(ckDir)
	if err != nil {
		return res, err
	}
	ck, err := sinks.ReadCheckpoint(ckDir)
	if err != nil {
		return res, err
	}
	spec := enc.Spec

	// The metrics.
	metricsPath := filepath.Join(runDir, metricsFileOf(spec))
	steps, bad, err := readMetrics(metricsPath)
	if err != nil {
		return res, err
	}
	res.Steps = len(steps)
	if bad > 0 {
		note("%d lines of %s did not parse and were left out (a run stopped mid-write leaves one).", bad, metricsPath)
	}
	evalPath := filepath.Join(runDir, EvalFile)
	evals, badEvals, evalErr := readEvals(evalPath)
	if badEvals > 0 {
		note("%d lines of %s did not parse and were left out.", badEvals, evalPath)
	}

	page := report.Page{
		Title:    "contrastream report: " + filepath.Base(filepath.Clean(runDir)),
		Subtitle: spec.Description,
		Footer:   fmt.Sprintf("Written by contrastream %s on %s from %s.", sinks.Versions()["contrastream"], time.Now().UTC().Format("2006-01-02 15:04 UTC"), runDir),
	}
	ecfg := enc.Weights.Config()
	lossName := lossOf(spec)
	page.Facts = append(page.Facts,
		[2]string{"flow", fmt.Sprintf("%s (seed %d, %d epochs planned)", spec.Name, spec.Seed, spec.Epochs)},
		[2]string{"encoder", fmt.Sprintf("%s, %d features, projection %d (input %s)", ecfg.Arch, enc.Weights.Features(), enc.Weights.Out(), enc.Weights.Input())},
		[2]string{"loss function", lossName},
		[2]string{"training data", dataName(TrainData(spec))},
		[2]string{"checkpoint", fmt.Sprintf("%s: step %d, epoch %d, written %s", ckDir, ck.Info.Step, ck.Info.Epoch, ck.Info.Written.Format("2006-01-02 15:04 UTC"))},
	)
	var sections []report.Section

	// Curves over steps.
	if len(steps) == 0 {
		note("%s has no steps: no training curves.", metricsPath)
	} else {
		secs, facts, err := stepSections(steps, lossName)
		if err != nil {
			return res, err
		}
		page.Facts = append(page.Facts, facts...)
		sections = append(sections, secs...)
	}

	// Embeddings: the test set (map, queries) and the training set
	// (retrieval memory, kNN point).
	testCfg, haveTest := cfg.Test, cfg.Test.Path != "" || len(cfg.Test.Paths) > 0
	if !haveTest {
		testCfg, haveTest = TestData(spec)
	}
	trainCfg := cfg.Train
	if trainCfg.Path == "" && len(trainCfg.Paths) == 0 {
		trainCfg = TrainData(spec)
	}
	knnSec := report.Section{Title: "kNN accuracy"}
	var emb *embedded
	if !haveTest {
		note("No test split found for %s (give one with --test): no embedding map, retrieval grid or kNN point.", dataName(TrainData(spec)))
	} else {
		if dataName(trainCfg) == dataName(testCfg) {
			note("The retrieval memory and the queries are the same dataset (%s): each query finds itself first, and the kNN point is optimistic.", dataName(testCfg))
		}
		emb, err = embedReport(ctx, enc, trainCfg, testCfg, cfg)
		if err != nil {
			return res, err
		}
		emb.notes = append(emb.notes, res.Notes...)
		res.Notes = emb.notes
	}
	// kNN over epochs from the monitor, and the checkpoint's point.
	switch {
	case evalErr != nil && !errors.Is(evalErr, os.ErrNotExist):
		return res, evalErr
	case len(evals) > 0:
		x, y := make([]float64, len(evals)), make([]float64, len(evals))
		for i, e := range evals {
			x[i], y[i] = e.Epoch, 100*e.KNNTop1
		}
		last := evals[len(evals)-1]
		knnSec.Text = fmt.Sprintf("The kNN monitor's top-1 accuracy on the test split (k = %d, T = %g) after each evaluation: last %.2f%% at epoch %g (step %d).", last.K, last.T, 100*last.KNNTop1, last.Epoch, last.Step)
		png, err := report.LineChart{Title: "kNN top-1 accuracy (monitor)", XLabel: "epoch", YLabel: "accuracy (%)",
			Series: []report.Series{{Name: "kNN top-1", X: x, Y: y, Points: true}}}.PNG()
		if err != nil {
			return res, err
		}
		knnSec.Figures = append(knnSec.Figures, report.Figure{Name: "knn.png", PNG: png, Alt: "kNN accuracy over epochs",
			Caption: "kNN top-1 accuracy of the frozen backbone features, as the monitor measured it during training."})
		page.Facts = append(page.Facts, [2]string{"kNN top-1 (monitor)", fmt.Sprintf("%.2f%% at epoch %g", 100*last.KNNTop1, last.Epoch)})
	default:
		knnSec.Notes = append(knnSec.Notes, "No kNN monitor in this run ("+EvalFile+" is absent), so no curve over epochs: the accuracy here is one point, computed by this report from the final checkpoint.")
	}
	if emb != nil && len(emb.names) > 0 {
		page.Facts = append(page.Facts, [2]string{"classes", fmt.Sprintf("%d: %s", len(emb.names), strings.Join(emb.names, ", "))})
	}
	if emb != nil && emb.knn != nil {
		res.KNN = emb.knn.Accuracy
		k := emb.knnCfg
		line := fmt.Sprintf("%.2f%% (%d/%d; k = %d, T = %g, memory %s, queries %s)", 100*emb.knn.Accuracy, emb.knn.Correct, emb.knn.Total, k.K, k.TemperatureOrDefault(), emb.trainName, emb.testName)
		page.Facts = append(page.Facts, [2]string{"kNN top-1 (checkpoint)", line})
		knnSec.Text = strings.TrimSpace(knnSec.Text + " The checkpoint at step " + fmt.Sprint(ck.Info.Step) + ", by weighted kNN on its backbone features: " + line + ".")
	} else if len(evals) == 0 {
		knnSec.Notes = append(knnSec.Notes, "No kNN point either: "+strings.Join(emb.knnWhy(), " "))
	}
	sections = append(sections, knnSec)
	if emb != nil {
		sections = append(sections, emb.sections...)
	}
	for _, n := range res.Notes {
		page.Facts = append(page.Facts, [2]string{"note", n})
	}
	page.Sections = sections
	path, err := page.Write(cfg.Out, ReportFile)
	if err != nil {
		return res, err
	}
	res.Page = path
	for _, s := range page.Sections {
		for _, f := range s.Figures {
			res.Figures = append(res.Figures, filepath.Join(cfg.Out, f.Name))
		}
	}
	return res, nil
}

func defaultInt(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// findCheckpoint returns runDir/checkpoint, or else runDir's one
// sub-folder that holds a state.json.
func findCheckpoint(runDir string) (string, error) {
	def := filepath.Join(runDir, "checkpoint")
	if _, err := os.Stat(filepath.Join(def, sinks.InfoFile)); err == nil {
		return def, nil
	}
	ents, err := os.ReadDir(runDir)
	if err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	var found []string
	for _, e := range ents {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			if _, err := os.Stat(filepath.Join(runDir, e.Name(), sinks.InfoFile)); err == nil {
				found = append(found, filepath.Join(runDir, e.Name()))
			}
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return "", fmt.Errorf("report: %s holds no checkpoint (no checkpoint/%s): is it a training run's folder?", runDir, sinks.InfoFile)
	}
	return "", fmt.Errorf("report: %s holds several checkpoints (%s): choose one with --checkpoint", runDir, strings.Join(found, ", "))
}

func metricsFileOf(spec *pipeline.Spec) string {
	for _, s := range spec.Sinks {
		if c, ok := s.Config.(*MetricsConfig); ok && c.File != "" {
			return c.File
		}
	}
	return "metrics.jsonl"
}

func lossOf(spec *pipeline.Spec) string {
	for _, s := range spec.Stages {
		if c, ok := s.Config.(*loss.Config); ok {
			t := c.Type
			if t == "" {
				t = loss.TypeInfoNCE
			}
			if c.Temperature != nil {
				return fmt.Sprintf("%s, temperature %g", t, *c.Temperature)
			}
			return t
		}
	}
	return "none"
}

// readMetrics reads a metrics file: one pipeline.StepMetrics a line. Lines
// that do not parse are counted, not fatal.
func readMetrics(path string) (steps []pipeline.StepMetrics, bad int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("report: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var m pipeline.StepMetrics
		if json.Unmarshal([]byte(line), &m) != nil {
			bad++
			continue
		}
		steps = append(steps, m)
	}
	if err := sc.Err(); err != nil {
		return nil, 0, fmt.Errorf("report: %s: %w", path, err)
	}
	return steps, bad, nil
}

// readEvals reads EvalFile; lines that do not parse are counted, not
// fatal (a run still writing may leave half a line).
func readEvals(path string) (out []evalLine, bad int, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var e evalLine
		if json.Unmarshal([]byte(line), &e) != nil {
			bad++
			continue
		}
		out = append(out, e)
	}
	return out, bad, nil
}

// stepSections draws the curves over steps.
func stepSections(steps []pipeline.StepMetrics, lossName string) ([]report.Section, [][2]string, error) {
	n := len(steps)
	x := make([]float64, n)
	col := func(f func(m pipeline.StepMetrics) float64) []float64 {
		y := make([]float64, n)
		for i, m := range steps {
			y[i] = f(m)
		}
		return y
	}
	for i, m := range steps {
		x[i] = float64(m.Step)
	}
	window := max(1, n/25) | 1 // odd: a centred window
	lossY := col(func(m pipeline.StepMetrics) float64 { return m.Loss })
	var samples int64
	var secs float64
	minLoss := math.Inf(1)
	for _, m := range steps {
		samples += int64(m.Samples)
		secs += m.Seconds
		minLoss = min(minLoss, m.Loss)
	}
	last := steps[n-1]
	facts := [][2]string{
		{"steps", fmt.Sprintf("%d (epochs %d to %d), %s samples", n, steps[0].Epoch+1, last.Epoch+1, sinks.Count(samples))},
		{"loss value", fmt.Sprintf("%.4f at step %d → %.4f at step %d (lowest %.4f)", steps[0].Loss, steps[0].Step, last.Loss, last.Step, minLoss)},
	}
	if secs > 0 {
		facts = append(facts, [2]string{"training time", fmt.Sprintf("%s in steps, %.0f samples/s", time.Duration(secs*float64(time.Second)).Round(time.Second), float64(samples)/secs)})
	}
	type chart struct {
		name, alt, caption string
		c                  report.LineChart
	}
	smoothName := fmt.Sprintf("mean of %d steps", window)
	charts := []chart{
		{"loss.png", "training loss over steps", fmt.Sprintf("The %s loss of each step (light) and its running mean over %d steps.", lossName, window),
			report.LineChart{Title: "Training loss (" + lossName + ")", XLabel: "step", YLabel: "loss", Series: []report.Series{
				{Name: "per step", X: x, Y: lossY, Faint: true, Color: report.Palette[0]},
				{Name: smoothName, X: x, Y: report.Smooth(lossY, window), Color: report.Palette[0]}}}},
		{"lr.png", "learning rate over steps", "The learning rate each step used (the optimizer's schedule).",
			report.LineChart{Title: "Learning rate", XLabel: "step", YLabel: "learning rate", Series: []report.Series{
				{X: x, Y: col(func(m pipeline.StepMetrics) float64 { return m.LR })}}}},
	}
	mom := col(func(m pipeline.StepMetrics) float64 { return m.Momentum })
	if slices.Max(mom) > 0 && slices.Max(mom) != slices.Min(mom) {
		charts = append(charts, chart{"momentum.png", "key-encoder momentum over steps", "The key encoder's EMA momentum m (ξ ← m·ξ + (1−m)·θ) each step.",
			report.LineChart{Title: "Key-encoder momentum", XLabel: "step", YLabel: "momentum", Series: []report.Series{{X: x, Y: mom}}}})
	} else if slices.Max(mom) > 0 {
		facts = append(facts, [2]string{"key-encoder momentum", fmt.Sprintf("%g (constant)", mom[0])})
	}
	pos := col(func(m pipeline.StepMetrics) float64 { return m.PosCos })
	neg := col(func(m pipeline.StepMetrics) float64 { return m.NegCos })
	charts = append(charts,
		chart{"similarity.png", "positive and negative cosine similarity over steps",
			fmt.Sprintf("Mean cosine similarity of the L2-normalised projections: positive pairs (two views of one image) and negatives, per step (light) and over %d steps. Training pulls the first up and pushes the second towards 0.", window),
			report.LineChart{Title: "Positive and negative similarity", XLabel: "step", YLabel: "mean cosine similarity", Series: []report.Series{
				{X: x, Y: pos, Faint: true, Color: report.Palette[2]}, {X: x, Y: neg, Faint: true, Color: report.Palette[3]},
				{Name: "positive pairs", X: x, Y: report.Smooth(pos, window), Color: report.Palette[2]},
				{Name: "negatives", X: x, Y: report.Smooth(neg, window), Color: report.Palette[3]}}}},
	)
	al := col(func(m pipeline.StepMetrics) float64 { return m.Alignment })
	un := col(func(m pipeline.StepMetrics) float64 { return m.Uniformity })
	charts = append(charts,
		chart{"alignment_uniformity.png", "alignment and uniformity over steps",
			"Alignment E‖z₁−z₂‖² of positive pairs and uniformity log E exp(−2‖zᵢ−zⱼ‖²) of the batch (Wang and Isola, 2020), on L2-normalised projections: lower is better for both.",
			report.LineChart{Title: "Alignment and uniformity (lower is better)", XLabel: "step", YLabel: "value", Series: []report.Series{
				{X: x, Y: al, Faint: true, Color: report.Palette[4]}, {X: x, Y: un, Faint: true, Color: report.Palette[1]},
				{Name: "alignment", X: x, Y: report.Smooth(al, window), Color: report.Palette[4]},
				{Name: "uniformity", X: x, Y: report.Smooth(un, window), Color: report.Palette[1]}}}},
	)
	sps := col(func(m pipeline.StepMetrics) float64 { return m.SamplesPerSec })
	charts = append(charts,
		chart{"throughput.png", "training throughput over steps", "Samples per second of each step (light) and over a running window: the training step alone, from the step's wall time.",
			report.LineChart{Title: "Throughput", XLabel: "step", YLabel: "samples/s", Series: []report.Series{
				{Name: "per step", X: x, Y: sps, Faint: true, Color: report.Palette[9]},
				{Name: smoothName, X: x, Y: report.Smooth(sps, window), Color: report.Palette[9]}}}},
	)
	train := report.Section{Title: "Training", Text: fmt.Sprintf("%d steps from metrics.jsonl.", n)}
	for _, c := range charts {
		png, err := c.c.PNG()
		if err != nil {
			return nil, nil, err
		}
		train.Figures = append(train.Figures, report.Figure{Name: c.name, PNG: png, Alt: c.alt, Caption: c.caption})
	}
	return []report.Section{train}, facts, nil
}

// embedded is what the report computed from embeddings.
type embedded struct {
	sections            []report.Section
	notes               []string
	knn                 *eval.KNNResult
	knnCfg              eval.KNNConfig
	knnErr              error
	trainName, testName string
	names               []string // class names
}

func (e *embedded) knnWhy() []string {
	if e == nil {
		return []string{"no test split."}
	}
	if e.knnErr != nil {
		return []string{e.knnErr.Error() + "."}
	}
	return nil
}

// encodedSet is a dataset's embeddings with their rows' samples.
type encodedSet struct {
	emb   *sinks.Embeddings
	ds    sources.Dataset
	names []string
}

// encodeSet encodes up to max samples of cfg, evenly spaced, keeping the
// dataset open (for the pictures).
func encodeSet(ctx context.Context, enc *Encoder, cfg sources.Config, limit int, phase string, rc ReportConfig) (*encodedSet, string, error) {
	ds, err := OpenDataset(cfg)
	if err != nil {
		return nil, "", err
	}
	name := dataName(cfg)
	if n := ds.Len(); n > int64(limit) {
		idx := make([]int64, limit)
		for i := range idx {
			idx[i] = int64(i) * n / int64(limit)
		}
		sub, err := sources.Subset(ds, idx)
		if err != nil {
			ds.Close()
			return nil, "", err
		}
		ds = sub
		name = fmt.Sprintf("%s (%s of %s, evenly spaced)", name, sinks.Count(int64(limit)), sinks.Count(n))
	} else {
		name = fmt.Sprintf("%s (%s)", name, sinks.Count(n))
	}
	e := &sinks.Embeddings{File: name, D: enc.Weights.Features()}
	opts := EncodeOptions{}
	if rc.Progress != nil {
		total := ds.Len()
		opts.Progress = func(n int64) { rc.Progress(phase, n, total) }
	}
	_, err = EncodeEach(ctx, enc.Weights, ds, enc.Augment, opts, func(b EncodedBatch) error {
		e.Index = append(e.Index, b.Index...)
		e.Label = append(e.Label, b.Label...)
		e.Path = append(e.Path, b.Path...)
		e.Data = append(e.Data, b.Data...)
		e.N += len(b.Index)
		return nil
	})
	if err == nil && e.N == 0 {
		err = fmt.Errorf("report: no image of %s could be decoded", name)
	}
	if err != nil {
		ds.Close()
		return nil, "", err
	}
	e.Info = sinks.EmbeddingInfo{Dim: e.D, Kind: sinks.KindFeatures, ClassNames: sources.ClassNames(ds)}
	return &encodedSet{emb: e, ds: ds, names: sources.ClassNames(ds)}, name, nil
}

func embedReport(ctx context.Context, enc *Encoder, trainCfg, testCfg sources.Config, cfg ReportConfig) (*embedded, error) {
	out := &embedded{}
	test, testName, err := encodeSet(ctx, enc, testCfg, cfg.MaxTest, "test", cfg)
	if err != nil {
		return nil, fmt.Errorf("report: test split: %w", err)
	}
	defer test.ds.Close()
	out.testName = testName
	names := test.names
	train, trainName, err := encodeSet(ctx, enc, trainCfg, cfg.MaxTrain, "train", cfg)
	if err != nil {
		return nil, fmt.Errorf("report: training split: %w", err)
	}
	defer train.ds.Close()
	out.trainName = trainName
	if names == nil {
		names = train.names
	}
	out.names = names

	// The map: PCA of the L2-normalised features (what cosine compares).
	te := test.emb
	unit := make([]float32, len(te.Data))
	for i := range te.N {
		v := te.Vector(i)
		var s float64
		for _, x := range v {
			s += float64(x) * float64(x)
		}
		inv := float32(1)
		if s > 0 {
			inv = float32(1 / math.Sqrt(s))
		}
		for j, x := range v {
			unit[i*te.D+j] = x * inv
		}
	}
	mapSec := report.Section{Title: "Embedding map (PCA)"}
	if te.N < 3 {
		mapSec.Notes = append(mapSec.Notes, fmt.Sprintf("Only %d test images: no map.", te.N))
	} else {
		coords, expl, err := report.PCA(unit, te.N, te.D, 2)
		if err != nil {
			return nil, err
		}
		xs, ys := make([]float64, te.N), make([]float64, te.N)
		for i := range te.N {
			xs[i], ys[i] = coords[2*i], coords[2*i+1]
		}
		png, err := report.ScatterChart{
			Title:  "Test embeddings: PCA of L2-normalised backbone features",
			XLabel: fmt.Sprintf("PC 1 (%.1f%% of variance)", 100*expl[0]), YLabel: fmt.Sprintf("PC 2 (%.1f%% of variance)", 100*expl[1]),
			X: xs, Y: ys, Class: te.Label, ClassNames: names,
		}.PNG()
		if err != nil {
			return nil, err
		}
		mapSec.Text = fmt.Sprintf("Every test image (%s) as a point: its backbone features, L2-normalised as the kNN monitor compares them, projected on their first two principal components, which hold %.1f%% of the variance. Colour is the true label; the encoder never saw labels. A linear 2-D view: classes that overlap here may still be apart in %d dimensions.",
			testName, 100*(expl[0]+expl[1]), te.D)
		mapSec.Figures = append(mapSec.Figures, report.Figure{Name: "pca.png", PNG: png, Alt: "PCA map of the test embeddings coloured by label",
			Caption: "PCA of the test embeddings, coloured by label (legend: class and count)."})
	}
	if cfg.TSNE >= 0 && te.N >= 10 {
		png, text, err := tsneMap(ctx, unit, te, names, cmp.Or(cfg.TSNE, 1000))
		if err != nil {
			return nil, err
		}
		mapSec.Title = "Embedding maps (PCA, t-SNE)"
		mapSec.Text += " " + text
		mapSec.Figures = append(mapSec.Figures, report.Figure{Name: "tsne.png", PNG: png, Alt: "t-SNE map of the test embeddings coloured by label",
			Caption: "t-SNE of the same features, coloured by label: neighbourhoods are kept, distances between clusters and cluster sizes are not meaningful."})
	}
	out.sections = append(out.sections, mapSec)

	// kNN point.
	if te.Labeled() && train.emb.Labeled() {
		tf := eval.Features{N: train.emb.N, D: train.emb.D, Data: train.emb.Data, Labels: train.emb.Label}
		qf := eval.Features{N: te.N, D: te.D, Data: te.Data, Labels: te.Label}
		r, err := eval.KNN(tf, qf, cfg.KNN)
		if err != nil {
			out.knnErr = err
		} else {
			out.knn = &r
			out.knnCfg = cfg.KNN
			if out.knnCfg.K == 0 {
				out.knnCfg.K = 200
			}
			out.knnCfg.Temperature = new(out.knnCfg.TemperatureOrDefault())
		}
	} else {
		out.knnErr = errors.New("the data are unlabeled")
	}

	// Retrieval grid.
	sec, err := retrieval(ctx, test, train, names, cfg)
	if err != nil {
		return nil, err
	}
	out.sections = append(out.sections, sec)
	return out, nil
}

// tsneMap draws the t-SNE map of up to max rows of unit (te's
// L2-normalised vectors).
func tsneMap(ctx context.Context, unit []float32, te *sinks.Embeddings, names []string, limit int) ([]byte, string, error) {
	n := min(te.N, limit)
	sub := make([]float32, 0, n*te.D)
	labels := make([]int64, n)
	for k := range n {
		i := k * te.N / n
		sub = append(sub, unit[i*te.D:(i+1)*te.D]...)
		labels[k] = te.Label[i]
	}
	const perplexity = 30
	start := time.Now()
	y, err := report.TSNE(ctx, sub, n, te.D, report.TSNEConfig{Perplexity: perplexity})
	if err != nil {
		return nil, "", err
	}
	xs, ys := make([]float64, n), make([]float64, n)
	for i := range n {
		xs[i], ys[i] = y[2*i], y[2*i+1]
	}
	png, err := report.ScatterChart{
		Title:  fmt.Sprintf("Test embeddings: t-SNE (%s points, perplexity %d)", sinks.Count(int64(n)), perplexity),
		XLabel: "t-SNE 1", YLabel: "t-SNE 2", X: xs, Y: ys, Class: labels, ClassNames: names,
	}.PNG()
	text := fmt.Sprintf("Below it, a t-SNE map (exact t-SNE, started from the PCA map) of %s of these images, which keeps each image's neighbourhood rather than the global geometry (%s to compute).",
		sinks.Count(int64(n)), time.Since(start).Round(100*time.Millisecond))
	return png, text, err
}

// retrieval draws test images (one of each of the first classes, or evenly
// spaced when unlabeled) beside their nearest training images.
func retrieval(ctx context.Context, test, train *encodedSet, names []string, cfg ReportConfig) (report.Section, error) {
	te, tr := test.emb, train.emb
	var qrows []int
	seen := map[int64]bool{}
	for i := range te.N {
		if l := te.Label[i]; l != pipeline.NoLabel && !seen[l] {
			seen[l] = true
			qrows = append(qrows, i)
		}
	}
	slices.SortFunc(qrows, func(a, b int) int { return int(te.Label[a] - te.Label[b]) })
	nq := cfg.Queries
	if nq <= 0 {
		nq = 8
		if len(qrows) > 0 && len(qrows) <= 12 {
			nq = len(qrows)
		}
	}
	if len(qrows) < nq {
		for i := 0; len(qrows) < nq && i < te.N; i += max(1, te.N/nq) {
			if !slices.Contains(qrows, i) {
				qrows = append(qrows, i)
			}
		}
	}
	qrows = qrows[:min(len(qrows), nq)]
	k := min(cfg.Neighbors, tr.N)
	nbs := make([][]sinks.Neighbor, len(qrows))
	want := map[int64]bool{}
	for i, q := range qrows {
		nb, err := tr.Nearest(te.Vector(q), k, -1)
		if err != nil {
			return report.Section{}, err
		}
		nbs[i] = nb
		for _, n := range nb {
			want[tr.Index[n.Row]] = true
		}
	}
	qIdx := map[int64]bool{}
	for _, q := range qrows {
		qIdx[te.Index[q]] = true
	}
	testImgs, err := pictures(ctx, test.ds, qIdx)
	if err != nil {
		return report.Section{}, err
	}
	trainImgs, err := pictures(ctx, train.ds, want)
	if err != nil {
		return report.Section{}, err
	}
	label := func(l int64) string {
		if l == pipeline.NoLabel {
			return "?"
		}
		if l < int64(len(names)) {
			return names[l]
		}
		return fmt.Sprint(l)
	}
	var rows [][]report.Cell
	hits, total := 0, 0
	for i, q := range qrows {
		row := []report.Cell{{Image: testImgs[te.Index[q]], Caption: label(te.Label[q]), Frame: report.Query}}
		for _, n := range nbs[i] {
			c := report.Cell{Image: trainImgs[tr.Index[n.Row]], Caption: label(tr.Label[n.Row])}
			if te.Label[q] != pipeline.NoLabel && tr.Label[n.Row] != pipeline.NoLabel {
				c.Frame = report.Mismatch
				if tr.Label[n.Row] == te.Label[q] {
					c.Frame = report.Match
					hits++
				}
				total++
			}
			row = append(row, c)
		}
		rows = append(rows, row)
	}
	titles := []string{"query"}
	for r := range k {
		titles = append(titles, fmt.Sprintf("#%d", r+1))
	}
	// Cells of a whole multiple of the images' size keep their pixels even.
	cell := 80
	if im := testImgs[te.Index[qrows[0]]]; im != nil && im.Bounds().Dx() > 0 && im.Bounds().Dx() < cell {
		side := im.Bounds().Dx()
		cell = side * max(1, (cell+side/2)/side)
	}
	img := report.CaptionedGrid(titles, rows, cell, 6)
	png, err := sinks.EncodePNG(img)
	if err != nil {
		return report.Section{}, err
	}
	sec := report.Section{Title: "Retrieval",
		Text: fmt.Sprintf("Each row: a test image (blue frame) and its %d nearest training images by cosine similarity of backbone features, nearest first, with their labels; green: same label as the query, red: another. Memory: %s.", k, train.emb.File),
		Figures: []report.Figure{{Name: "retrieval.png", PNG: png, Alt: "test images beside their nearest training images",
			Caption: fmt.Sprintf("Nearest training neighbours of %d test images.", len(qrows))}}}
	if total > 0 {
		sec.Text += fmt.Sprintf(" %d of the %d neighbours shown share the query's label.", hits, total)
	}
	return sec, nil
}

// pictures decodes the samples of ds whose Index (their position in ds)
// is in want. A sample that does not decode is left out (drawn blank).
func pictures(ctx context.Context, ds sources.Dataset, want map[int64]bool) (map[int64]image.Image, error) {
	idx := make([]int64, 0, len(want))
	for i := range want {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	out := map[int64]image.Image{}
	if len(idx) == 0 {
		return out, nil
	}
	sub, err := sources.Subset(ds, idx) // not closed: it would close ds
	if err != nil {
		return nil, err
	}
	err = sources.Each(ctx, sub, sources.StreamConfig{}, func(s pipeline.Sample) error {
		if img, err := sources.Decode(s, 0); err == nil {
			out[idx[s.Index]] = img // Subset renumbers from 0
		}
		return nil
	})
	return out, err
}
