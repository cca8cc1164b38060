package sinks

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"path/filepath"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/contrastream/contrastream/pipeline"
)

// ViewImage turns a normalised CHW view back into a picture: each channel is
// multiplied by std and shifted by mean (one value for all channels, or one
// per channel), clipped to [0,1]. One channel gives a gray image, three an
// RGB image.
func ViewImage(v pipeline.View, mean, std []float64) (image.Image, error) {
	if v.C != 1 && v.C != 3 {
		return nil, fmt.Errorf("view has %d channels; want 1 or 3", v.C)
	}
	if len(v.Data) != v.C*v.H*v.W {
		return nil, fmt.Errorf("view data has %d values; want %d×%d×%d", len(v.Data), v.C, v.H, v.W)
	}
	at := func(s []float64, c int, def float64) float64 {
		switch len(s) {
		case 0:
			return def
		case 1:
			return s[0]
		default:
			return s[c]
		}
	}
	px := func(c, i int) uint8 {
		x := float64(v.Data[c*v.H*v.W+i])*at(std, c, 1) + at(mean, c, 0)
		return uint8(math.Round(255 * min(1, max(0, x))))
	}
	r := image.Rect(0, 0, v.W, v.H)
	if v.C == 1 {
		g := image.NewGray(r)
		for i := range g.Pix {
			g.Pix[i] = px(0, i)
		}
		return g, nil
	}
	rgb := image.NewRGBA(r)
	for i := 0; i < v.H*v.W; i++ {
		rgb.Pix[4*i], rgb.Pix[4*i+1], rgb.Pix[4*i+2], rgb.Pix[4*i+3] = px(0, i), px(1, i), px(2, i), 255
	}
	return rgb, nil
}

// TitledGrid is Grid with a line of text above each column (or none where
// a title is ""), in a 7×13 pixel font.
func TitledGrid(titles []string, rows [][]image.Image, cell, pad int) *image.RGBA {
	const lineH = 16
	g := Grid(rows, cell, pad)
	out := image.NewRGBA(image.Rect(0, 0, g.Bounds().Dx(), g.Bounds().Dy()+lineH))
	draw.Draw(out, out.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	draw.Draw(out, g.Bounds().Add(image.Pt(0, lineH)), g, image.Point{}, draw.Src)
	d := &font.Drawer{Dst: out, Src: image.NewUniform(color.Black), Face: basicfont.Face7x13}
	for i, t := range titles {
		w := d.MeasureString(t).Ceil()
		x := pad + i*(cell+pad) + max(0, (cell-w)/2)
		d.Dot = fixed.P(x, lineH-3)
		d.DrawString(t)
	}
	return out
}

// Grid lays images out in rows, each scaled (nearest neighbour, so pixels
// stay visible) to cell×cell with a gap of pad pixels on a white ground.
// Rows may have different lengths. A typical preview row is the original
// image beside its two augmented views.
func Grid(rows [][]image.Image, cell, pad int) *image.RGBA {
	cols := 0
	for _, r := range rows {
		cols = max(cols, len(r))
	}
	out := image.NewRGBA(image.Rect(0, 0, pad+cols*(cell+pad), pad+len(rows)*(cell+pad)))
	draw.Draw(out, out.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	for y, r := range rows {
		for x, img := range r {
			if img == nil {
				continue
			}
			x0, y0 := pad+x*(cell+pad), pad+y*(cell+pad)
			b := img.Bounds()
			for j := 0; j < cell; j++ {
				sy := b.Min.Y + j*b.Dy()/cell
				for i := 0; i < cell; i++ {
					sx := b.Min.X + i*b.Dx()/cell
					out.Set(x0+i, y0+j, img.At(sx, sy))
				}
			}
		}
	}
	return out
}

// WritePNG writes img to path atomically (a temporary file in the same
// folder, fsync, rename, fsync of the folder), so a reader never sees half a
// picture. The file is readable by everyone (0644).
func WritePNG(path string, img image.Image) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := png.Encode(tmp, img); err != nil {
		tmp.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil { // CreateTemp makes it 0600
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	syncDir(filepath.Dir(path))
	return nil
}
