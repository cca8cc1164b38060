package report

import (
	"image"
	"image/color"
	"image/draw"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/contrastream/contrastream/sinks"
)

// Cell is one picture of a CaptionedGrid.
type Cell struct {
	// Image is the picture (nil leaves the cell blank).
	Image image.Image
	// Caption is written under it, clipped to the cell's width.
	Caption string
	// Frame, when not nil, is drawn as a 3-pixel border around the picture
	// (green for a neighbour of the query's class, red otherwise, say).
	Frame color.Color
}

// Colours of the retrieval grid's frames.
var (
	Match    = color.RGBA{44, 160, 44, 255}
	Mismatch = color.RGBA{214, 39, 40, 255}
	Query    = color.RGBA{31, 119, 180, 255}
)

// CaptionedGrid lays cells out in rows, each picture scaled to cell×cell
// (nearest neighbour, by sinks.Grid) with a caption line under it and a
// gap of pad pixels, under a line of column titles (none where titles is
// empty), in a 7×13 pixel font. A retrieval grid has a query and its
// nearest neighbours in each row.
func CaptionedGrid(titles []string, rows [][]Cell, cell, pad int) *image.RGBA {
	const lineH = 16
	top := 0
	if len(titles) > 0 {
		top = lineH
	}
	cols := 0
	for _, r := range rows {
		cols = max(cols, len(r))
	}
	rowH := cell + lineH + pad
	out := image.NewRGBA(image.Rect(0, 0, pad+cols*(cell+pad), top+pad+len(rows)*rowH))
	draw.Draw(out, out.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	d := &font.Drawer{Dst: out, Src: image.NewUniform(color.Black), Face: basicfont.Face7x13}
	text := func(s string, x0, baseline int) {
		// Clip to the cell: 7 pixels a character.
		if maxChars := cell / 7; len([]rune(s)) > maxChars {
			s = string([]rune(s)[:max(0, maxChars-1)]) + "…"
		}
		w := d.MeasureString(s).Ceil()
		d.Dot = fixed.P(x0+max(0, (cell-w)/2), baseline)
		d.DrawString(s)
	}
	for i, t := range titles {
		text(t, pad+i*(cell+pad), lineH-3)
	}
	for y, r := range rows {
		imgs := make([]image.Image, len(r))
		for x, c := range r {
			imgs[x] = c.Image
		}
		strip := sinks.Grid([][]image.Image{imgs}, cell, 0)
		y0 := top + pad + y*rowH
		for x, c := range r {
			x0 := pad + x*(cell+pad)
			if c.Image != nil {
				draw.Draw(out, image.Rect(x0, y0, x0+cell, y0+cell), strip, image.Pt(x*cell, 0), draw.Src)
			}
			if c.Frame != nil {
				frame(out, image.Rect(x0, y0, x0+cell, y0+cell), c.Frame, 3)
			}
			text(c.Caption, x0, y0+cell+lineH-4)
		}
	}
	return out
}

// frame draws a border of width w just inside r.
func frame(dst draw.Image, r image.Rectangle, c color.Color, w int) {
	u := image.NewUniform(c)
	for _, s := range []image.Rectangle{
		{r.Min, image.Pt(r.Max.X, r.Min.Y+w)},
		{image.Pt(r.Min.X, r.Max.Y-w), r.Max},
		{r.Min, image.Pt(r.Min.X+w, r.Max.Y)},
		{image.Pt(r.Max.X-w, r.Min.Y), r.Max},
	} {
		draw.Draw(dst, s, u, image.Point{}, draw.Src)
	}
}
