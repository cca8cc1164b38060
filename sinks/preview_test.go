package sinks

import (
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/contrastream/contrastream/pipeline"
)

func TestViewImageUndoesNormalisation(t *testing.T) {
	// A 1×2×2 view normalised with mean 0.5, std 0.25: pixel values 0, 0.5, 1 and 0.75.
	want := []uint8{0, 128, 255, 191}
	v := pipeline.View{C: 1, H: 2, W: 2, Data: []float32{-2, 0, 2, 1}}
	img, err := ViewImage(v, []float64{0.5}, []float64{0.25})
	if err != nil {
		t.Fatal(err)
	}
	g := img.(*image.Gray)
	for i, w := range want {
		if g.Pix[i] != w {
			t.Errorf("pixel %d = %d, want %d", i, g.Pix[i], w)
		}
	}
	if _, err := ViewImage(pipeline.View{C: 2, H: 1, W: 1, Data: []float32{0, 0}}, nil, nil); err == nil {
		t.Error("a 2-channel view gave no error")
	}
}

func TestGridAndWritePNG(t *testing.T) {
	red := image.NewRGBA(image.Rect(0, 0, 2, 2))
	for i := 0; i < 4; i++ {
		red.Set(i%2, i/2, color.RGBA{255, 0, 0, 255})
	}
	g := Grid([][]image.Image{{red, red}, {red}}, 4, 1)
	if g.Bounds().Dx() != 1+2*5 || g.Bounds().Dy() != 1+2*5 {
		t.Fatalf("grid is %v", g.Bounds())
	}
	if c := g.RGBAAt(1, 1); c.R != 255 || c.G != 0 {
		t.Errorf("cell pixel = %v, want red", c)
	}
	if c := g.RGBAAt(0, 0); c.G != 255 {
		t.Errorf("padding pixel = %v, want white", c)
	}
	if c := g.RGBAAt(7, 7); c.G != 255 {
		t.Errorf("empty cell pixel = %v, want white", c)
	}
	path := filepath.Join(t.TempDir(), "grid.png")
	if err := WritePNG(path, g); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	back, err := png.Decode(f)
	if err != nil || back.Bounds() != g.Bounds() {
		t.Fatalf("read back %v, %v", back.Bounds(), err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, %v; want 0644", st.Mode(), err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("folder holds %d entries; the temporary file was left behind", len(entries))
	}
}

func TestTitledGrid(t *testing.T) {
	cell := image.NewGray(image.Rect(0, 0, 4, 4))
	g := TitledGrid([]string{"original", "view 1"}, [][]image.Image{{cell, cell}}, 64, 4)
	if g.Bounds().Dx() != 4+2*68 || g.Bounds().Dy() != 16+4+68 {
		t.Fatalf("bounds %v", g.Bounds())
	}
	dark := 0
	for y := 0; y < 16; y++ {
		for x := 0; x < g.Bounds().Dx(); x++ {
			if g.RGBAAt(x, y).R < 128 {
				dark++
			}
		}
	}
	if dark < 20 {
		t.Errorf("%d dark pixels in the title line: no text drawn", dark)
	}
	if c := g.RGBAAt(10, 16+10); c.R != 0 {
		t.Errorf("the grid is not below the titles: %v", c)
	}
}
