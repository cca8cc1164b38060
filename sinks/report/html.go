package report

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html/template"
	"os"
	"path/filepath"
	"regexp"
)

// Page is a report: a title, a table of facts, and sections of text and
// figures.
type Page struct {
	Title    string
	Subtitle string
	// Facts are the summary table's rows: a name and a value.
	Facts [][2]string
	// Sections follow the table in order.
	Sections []Section
	// Footer is a last line of small print (what wrote the page, when).
	Footer string
}

// Section is a part of a Page.
type Section struct {
	Title string
	// Text is a paragraph above the figures; Notes are set apart as
	// remarks (a missing input, an approximation made).
	Text  string
	Notes []string
	// Figures are shown in order, full width.
	Figures []Figure
}

// Figure is one picture of a Section.
type Figure struct {
	// Name is the PNG's file name beside the page ("loss.png"); it must be
	// a plain file name.
	Name string
	// PNG is the picture, encoded.
	PNG []byte
	// Alt describes it for readers without images; Caption is shown under
	// it.
	Alt, Caption string
}

var plainName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*\.png$`)

// Write writes the page to dir/name (dir is created if need be) with every
// figure inside it as a data URI, so that the HTML file alone is the whole
// report, and each figure also as its own PNG file beside it. Every file
// is written atomically. It returns the page's path.
func (p Page) Write(dir, name string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	type fig struct {
		Figure
		Src template.URL
	}
	type sec struct {
		Section
		Figs []fig
	}
	var secs []sec
	seen := map[string]bool{}
	for _, s := range p.Sections {
		ss := sec{Section: s}
		for _, f := range s.Figures {
			if !plainName.MatchString(f.Name) || seen[f.Name] {
				return "", fmt.Errorf("report: figure name %q is not a plain, unique file name ending in .png", f.Name)
			}
			seen[f.Name] = true
			if err := writeFileAtomic(filepath.Join(dir, f.Name), f.PNG); err != nil {
				return "", err
			}
			ss.Figs = append(ss.Figs, fig{f, template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(f.PNG))})
		}
		secs = append(secs, ss)
	}
	var buf bytes.Buffer
	err := pageTemplate.Execute(&buf, struct {
		Page
		Secs []sec
	}{p, secs})
	if err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	path := filepath.Join(dir, name)
	return path, writeFileAtomic(path, buf.Bytes())
}

// writeFileAtomic writes b to a temporary file beside path, syncs it and
// renames it to path (mode 0644).
func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

var pageTemplate = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #222; margin: 0; background: #f6f6f4; }
main { max-width: 960px; margin: 0 auto; padding: 24px 28px 40px; background: #fff; }
h1 { font-size: 26px; margin: 0 0 4px; }
.sub { color: #666; margin: 0 0 18px; }
h2 { font-size: 19px; border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 30px; }
table.facts { border-collapse: collapse; font-size: 14px; }
table.facts th { text-align: left; font-weight: 600; padding: 3px 18px 3px 0; color: #444; vertical-align: top; }
table.facts td { padding: 3px 0; font-variant-numeric: tabular-nums; }
p { line-height: 1.45; font-size: 15px; }
.note { background: #fff8e0; border-left: 4px solid #e0b000; padding: 6px 10px; margin: 8px 0; font-size: 14px; }
figure { margin: 14px 0 22px; }
figure img { max-width: 100%; height: auto; border: 1px solid #e4e4e4; }
figcaption { font-size: 13px; color: #555; margin-top: 4px; }
footer { color: #888; font-size: 12px; margin-top: 30px; }
</style>
</head>
<body>
<main>
<h1>{{.Title}}</h1>
{{if .Subtitle}}<p class="sub">{{.Subtitle}}</p>{{end}}
{{if .Facts}}<table class="facts">
{{range .Facts}}<tr><th>{{index . 0}}</th><td>{{index . 1}}</td></tr>
{{end}}</table>{{end}}
{{range .Secs}}<section>
<h2>{{.Title}}</h2>
{{if .Text}}<p>{{.Text}}</p>{{end}}
{{range .Notes}}<div class="note">{{.}}</div>
{{end}}{{range .Figs}}<figure>
<img src="{{.Src}}" alt="{{.Alt}}">
{{if .Caption}}<figcaption>{{.Caption}}</figcaption>{{end}}
</figure>
{{end}}</section>
{{end}}{{if .Footer}}<footer>{{.Footer}}</footer>{{end}}
</main>
</body>
</html>
`))
