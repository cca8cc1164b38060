package report

import (
	"bytes"
	"errors"
	"fmt"
	"image/color"
	"image/png"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// dpi is the resolution plots are drawn at: sizes in points (1/72 inch) become
// pixels at dpi/72 each.
const dpi = 120

// Default plot sizes, in pixels.
const (
	DefaultWidth  = 900
	DefaultHeight = 380
)

// Palette is the colour of class or series i (i mod 10): Tableau's ten
// categorical colours, which stay distinct for most colour-blind readers.
var Palette = []color.RGBA{
	{31, 119, 180, 255}, {255, 127, 14, 255}, {44, 160, 44, 255}, {214, 39, 40, 255}, {148, 103, 189, 255},
	{140, 86, 75, 255}, {227, 119, 194, 255}, {127, 127, 127, 255}, {188, 189, 34, 255}, {23, 190, 207, 255},
}

// Series is one line of a LineChart.
type Series struct {
	// Name is its legend entry ("" for none).
	Name string
	// X and Y are its points, of equal length.
	X, Y []float64
	// Faint draws it thin and light (raw values under a smoothed line).
	Faint bool
	// Points marks each point (for series of a few points).
	Points bool
	// Color is its colour; default Palette[i] for the i-th series.
	Color color.Color
}

// LineChart is a plot of lines over a common x axis.
type LineChart struct {
	Title, XLabel, YLabel string
	Series                []Series
	// Width and Height are in pixels; default DefaultWidth×DefaultHeight.
	Width, Height int
	// YMin and YMax fix the y range when YMin < YMax.
	YMin, YMax float64
}

// PNG draws the chart.
func (c LineChart) PNG() ([]byte, error) {
	p := newPlot(c.Title, c.XLabel, c.YLabel)
	named := 0
	for i, s := range c.Series {
		if len(s.X) != len(s.Y) {
			return nil, fmt.Errorf("report: %s: series %q has %d x and %d y values", c.Title, s.Name, len(s.X), len(s.Y))
		}
		if len(s.X) == 0 {
			continue
		}
		xys := make(plotter.XYs, 0, len(s.X))
		for k := range s.X {
			if !math.IsNaN(s.Y[k]) && !math.IsInf(s.Y[k], 0) {
				xys = append(xys, plotter.XY{X: s.X[k], Y: s.Y[k]})
			}
		}
		if len(xys) == 0 {
			continue
		}
		col := s.Color
		if col == nil {
			col = Palette[i%len(Palette)]
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return nil, fmt.Errorf("report: %s: %w", c.Title, err)
		}
		l.Color, l.Width = col, vg.Points(1.6)
		if s.Faint {
			l.Color, l.Width = fade(col), vg.Points(0.8)
		}
		p.Add(l)
		thumbs := []plot.Thumbnailer{l}
		if s.Points || len(xys) == 1 {
			sc, err := plotter.NewScatter(xys)
			if err != nil {
				return nil, err
			}
			sc.GlyphStyle = draw.GlyphStyle{Color: col, Radius: vg.Points(3.5), Shape: draw.CircleGlyph{}}
			p.Add(sc)
			thumbs = append(thumbs, sc)
		}
		if s.Name != "" {
			p.Legend.Add(s.Name, thumbs...)
			named++
		}
	}
	if c.YMin < c.YMax {
		p.Y.Min, p.Y.Max = c.YMin, c.YMax
	}
	if named == 0 {
		return render(p, c.Width, c.Height, nil) // the title says what the line is
	}
	// The legend goes right of the plot, where it hides no curve.
	legend := p.Legend
	legend.Top, legend.Left = true, true
	legend.Padding = vg.Points(4)
	p.Legend = plot.NewLegend()
	return render(p, c.Width, c.Height, &legend)
}

// ScatterChart is a 2-D map of points coloured by class.
type ScatterChart struct {
	Title, XLabel, YLabel string
	// X and Y are the points' coordinates; Class their classes (0 to
	// len(ClassNames)-1, or any value ≥ 0 when ClassNames is nil; a
	// negative class is drawn gray as "no label").
	X, Y  []float64
	Class []int64
	// ClassNames name the classes in the legend, which sits right of the
	// plot.
	ClassNames []string
	// Width and Height are in pixels; default 900×640.
	Width, Height int
}

// PNG draws the chart.
func (c ScatterChart) PNG() ([]byte, error) {
	if len(c.X) != len(c.Y) || len(c.X) != len(c.Class) {
		return nil, fmt.Errorf("report: %s: %d x, %d y, %d classes", c.Title, len(c.X), len(c.Y), len(c.Class))
	}
	if len(c.X) == 0 {
		return nil, errors.New("report: " + c.Title + ": no points")
	}
	if c.Height == 0 {
		c.Height = 640
	}
	p := newPlot(c.Title, c.XLabel, c.YLabel)
	groups := map[int64]plotter.XYs{}
	var maxClass int64 = -1
	for i := range c.X {
		groups[c.Class[i]] = append(groups[c.Class[i]], plotter.XY{X: c.X[i], Y: c.Y[i]})
		maxClass = max(maxClass, c.Class[i])
	}
	legend := plot.NewLegend()
	legend.Top, legend.Left = true, true
	legend.Padding = vg.Points(2)
	legend.TextStyle.Font.Size = vg.Points(10)
	for cl := int64(-1); cl <= maxClass; cl++ {
		xys, ok := groups[cl]
		if !ok {
			continue
		}
		s, err := plotter.NewScatter(xys)
		if err != nil {
			return nil, err
		}
		col := color.Color(color.RGBA{160, 160, 160, 255})
		name := "no label"
		if cl >= 0 {
			col = Palette[cl%int64(len(Palette))]
			name = fmt.Sprint(cl)
			if cl < int64(len(c.ClassNames)) {
				name = fmt.Sprintf("%d %s", cl, c.ClassNames[cl])
			}
		}
		s.GlyphStyle = draw.GlyphStyle{Color: withAlpha(col, 200), Radius: vg.Points(1.8), Shape: draw.CircleGlyph{}}
		p.Add(s)
		big := *s // a larger dot in the legend
		big.GlyphStyle.Radius = vg.Points(4)
		legend.Add(fmt.Sprintf("%s (%d)", name, len(xys)), &big)
	}
	return render(p, c.Width, c.Height, &legend)
}

func newPlot(title, xl, yl string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.Title.Padding = vg.Points(6)
	p.X.Label.Text, p.Y.Label.Text = xl, yl
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font.Size = vg.Points(11)
		a.Tick.Label.Font.Size = vg.Points(9.5)
	}
	g := plotter.NewGrid()
	g.Vertical.Color, g.Horizontal.Color = color.Gray{Y: 225}, color.Gray{Y: 225}
	p.Add(g)
	p.Legend.TextStyle.Font.Size = vg.Points(10)
	return p
}

// render draws p (and, when not nil, a legend in a column right of it) on
// a white w×h pixel canvas and encodes it as PNG.
func render(p *plot.Plot, w, h int, legend *plot.Legend) ([]byte, error) {
	if w == 0 {
		w = DefaultWidth
	}
	if h == 0 {
		h = DefaultHeight
	}
	if w < 100 || h < 80 {
		return nil, fmt.Errorf("report: a plot of %d×%d pixels is too small", w, h)
	}
	px := vg.Inch / dpi
	c := vgimg.NewWith(vgimg.UseWH(vg.Length(w)*px, vg.Length(h)*px), vgimg.UseDPI(dpi), vgimg.UseBackgroundColor(color.White))
	dc := draw.New(c)
	if legend == nil {
		p.Draw(dc)
	} else {
		lw := legendWidth(legend, dc)
		p.Draw(draw.Crop(dc, 0, -lw, 0, 0))
		area := draw.Crop(dc, dc.Max.X-dc.Min.X-lw+vg.Points(8), 0, 0, -vg.Points(30))
		legend.Draw(area)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, c.Image()); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func legendWidth(l *plot.Legend, c draw.Canvas) vg.Length {
	r := l.Rectangle(c)
	return r.Max.X - r.Min.X + vg.Points(14)
}

func fade(c color.Color) color.Color {
	r, g, b, _ := c.RGBA()
	mix := func(v uint32) uint8 { return uint8((v>>8)*2/5 + 255*3/5) }
	return color.RGBA{mix(r), mix(g), mix(b), 255}
}

func withAlpha(c color.Color, a uint8) color.Color {
	r, g, b, _ := c.RGBA()
	// premultiplied
	return color.RGBA{uint8((r >> 8) * uint32(a) / 255), uint8((g >> 8) * uint32(a) / 255), uint8((b >> 8) * uint32(a) / 255), a}
}

// Smooth is the centred moving average of y over window points (fewer at
// the ends, where the window is cut): the trend of a noisy per-step curve,
// without the lag of a trailing average.
func Smooth(y []float64, window int) []float64 {
	out := make([]float64, len(y))
	half := max(0, window/2)
	prefix := make([]float64, len(y)+1)
	for i, v := range y {
		prefix[i+1] = prefix[i] + v
	}
	for i := range y {
		lo, hi := max(0, i-half), min(len(y), i+half+1)
		out[i] = (prefix[hi] - prefix[lo]) / float64(hi-lo)
	}
	return out
}
