package report_test

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/contrastream/contrastream/sinks/report"
)

// TestPCA projects five 3-D points that lie in a plane, along two
// orthogonal directions with variances 10:2.5, back onto those directions.
func TestPCA(t *testing.T) {
	tt := []float64{-2, -1, 0, 1, 2}
	ss := []float64{0.5, -1, 0, 1, -0.5}
	a := []float64{1 / math.Sqrt(5), 2 / math.Sqrt(5), 0} // largest loading positive
	b := []float64{0, 0, 1}
	shift := []float64{3, -1, 7} // PCA centres
	var data []float32
	for i := range tt {
		for j := range 3 {
			data = append(data, float32(tt[i]*a[j]+ss[i]*b[j]+shift[j]))
		}
	}
	coords, expl, err := report.PCA(data, 5, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := range tt {
		if math.Abs(coords[2*i]-tt[i]) > 1e-5 || math.Abs(coords[2*i+1]-ss[i]) > 1e-5 {
			t.Errorf("point %d: %v, %v; want %v, %v", i, coords[2*i], coords[2*i+1], tt[i], ss[i])
		}
	}
	if math.Abs(expl[0]-0.8) > 1e-6 || math.Abs(expl[1]-0.2) > 1e-6 {
		t.Errorf("explained %v; want [0.8 0.2]", expl)
	}
	if _, _, err := report.PCA(data[:3], 1, 3, 2); err == nil {
		t.Error("PCA of one point")
	}
	if _, _, err := report.PCA(data, 5, 3, 4); err == nil {
		t.Error("PCA to more dimensions than there are")
	}
}

func decode(t *testing.T, b []byte) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestCharts(t *testing.T) {
	x := []float64{0, 1, 2, 3, 4}
	y := []float64{5, 4, math.NaN(), 2, 1}
	b, err := report.LineChart{Title: "loss", XLabel: "step", YLabel: "loss", Series: []report.Series{
		{Name: "raw", X: x, Y: y, Faint: true}, {Name: "smooth", X: x, Y: report.Smooth(y[:2], 1)},
	}}.PNG()
	if err == nil {
		t.Error("series of unequal lengths")
	}
	b, err = report.LineChart{Title: "loss", XLabel: "step", YLabel: "loss", Series: []report.Series{
		{Name: "raw", X: x, Y: y, Faint: true}, {Name: "mean", X: x, Y: report.Smooth([]float64{5, 4, 3, 2, 1}, 3)},
	}}.PNG()
	if err != nil {
		t.Fatal(err)
	}
	if img := decode(t, b); img.Bounds().Dx() != report.DefaultWidth || img.Bounds().Dy() != report.DefaultHeight {
		t.Errorf("line chart is %v", img.Bounds())
	}
	b, err = report.ScatterChart{Title: "map", X: []float64{0, 1, 2}, Y: []float64{1, 0, 1}, Class: []int64{0, 1, -1},
		ClassNames: []string{"cat", "dog"}, Width: 500, Height: 400}.PNG()
	if err != nil {
		t.Fatal(err)
	}
	if img := decode(t, b); img.Bounds().Dx() != 500 || img.Bounds().Dy() != 400 {
		t.Errorf("scatter is %v", img.Bounds())
	}
	if _, err := (report.ScatterChart{Title: "empty"}).PNG(); err == nil {
		t.Error("an empty scatter")
	}
}

func TestSmooth(t *testing.T) {
	got := report.Smooth([]float64{1, 2, 3, 4, 10}, 3)
	want := []float64{1.5, 2, 3, 17.0 / 3, 7}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-12 {
			t.Fatalf("Smooth: %v; want %v", got, want)
		}
	}
}

func TestCaptionedGrid(t *testing.T) {
	gray := image.NewGray(image.Rect(0, 0, 4, 4))
	for i := range gray.Pix {
		gray.Pix[i] = 128
	}
	rows := [][]report.Cell{
		{{Image: gray, Caption: "query", Frame: report.Query}, {Image: gray, Caption: "a very long caption indeed", Frame: report.Match}},
		{{Image: gray}, {}},
	}
	g := report.CaptionedGrid([]string{"q", "#1"}, rows, 40, 4)
	// 16 (titles) + 4 + 2 rows of (40 + 16 + 4); 4 + 2 columns of 44.
	if g.Bounds().Dx() != 4+2*44 || g.Bounds().Dy() != 16+4+2*60 {
		t.Fatalf("grid is %v", g.Bounds())
	}
	if c := g.RGBAAt(4+1, 16+4+1); c != report.Query {
		t.Errorf("query frame pixel %v", c)
	}
	if c := g.RGBAAt(4+20, 16+4+20); c != (color.RGBA{128, 128, 128, 255}) {
		t.Errorf("picture pixel %v", c)
	}
}

func TestPageWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	pic, _ := report.LineChart{Title: "t", Series: []report.Series{{X: []float64{0, 1}, Y: []float64{1, 2}}}}.PNG()
	p := report.Page{Title: "a <report>", Facts: [][2]string{{"k", "v & w"}}, Sections: []report.Section{
		{Title: "S", Text: "text", Notes: []string{"a note"}, Figures: []report.Figure{{Name: "one.png", PNG: pic, Alt: "one", Caption: "cap"}}},
	}}
	path, err := p.Write(dir, "index.html")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	html := string(b)
	for _, want := range []string{"a &lt;report&gt;", "v &amp; w", `src="data:image/png;base64,iVBOR`, "a note", "<figcaption>cap</figcaption>"} {
		if !strings.Contains(html, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if on, err := os.ReadFile(filepath.Join(dir, "one.png")); err != nil || !bytes.Equal(on, pic) {
		t.Errorf("one.png beside the page: %v", err)
	}
	p.Sections[0].Figures[0].Name = "../escape.png"
	if _, err := p.Write(dir, "index.html"); err == nil {
		t.Error("a figure name with a path")
	}
}

// TestTSNE maps three well-separated clusters of 30 points in 10-D: in the
// map, every point's nearest neighbour is of its own cluster, and the
// result is the same twice.
func TestTSNE(t *testing.T) {
	const per, d = 30, 10
	n := 3 * per
	data := make([]float32, n*d)
	seed := uint32(1)
	rnd := func() float32 { // a small deterministic generator in [-0.5, 0.5)
		seed = seed*1664525 + 1013904223
		return float32(seed>>8)/float32(1<<24) - 0.5
	}
	for i := range n {
		c := i / per
		for k := range d {
			data[i*d+k] = rnd()
			if k == c {
				data[i*d+k] += 8
			}
		}
	}
	y, err := report.TSNE(context.Background(), data, n, d, report.TSNEConfig{Perplexity: 10, Iterations: 300})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		best, bd := -1, math.Inf(1)
		for j := range n {
			if j == i {
				continue
			}
			dx, dy := y[2*i]-y[2*j], y[2*i+1]-y[2*j+1]
			if dd := dx*dx + dy*dy; dd < bd {
				best, bd = j, dd
			}
		}
		if best/per != i/per {
			t.Errorf("point %d (cluster %d): nearest in the map is %d (cluster %d)", i, i/per, best, best/per)
		}
	}
	again, _ := report.TSNE(context.Background(), data, n, d, report.TSNEConfig{Perplexity: 10, Iterations: 300})
	for i := range y {
		if y[i] != again[i] {
			t.Fatal("two runs differ")
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := report.TSNE(ctx, data, n, d, report.TSNEConfig{}); err == nil {
		t.Error("a cancelled context")
	}
}
