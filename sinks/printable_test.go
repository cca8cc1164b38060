package sinks_test

import (
	"fmt"
	"testing"

	"github.com/contrastream/contrastream/sinks"
)

func TestPrintable(t *testing.T) {
	for _, tc := range []struct {
		in, want, text string // text: PrintableText's result, when not want
	}{
		{in: "T-shirt/top", want: "T-shirt/top"},
		{in: "Ankle boot", want: "Ankle boot"},
		{in: "Bücher, café, 猫, Ελληνικά, עברית", want: "Bücher, café, 猫, Ελληνικά, עברית"},
		{in: "emoji 👩‍🔬", want: "emoji 👩‍🔬"}, // a zero-width joiner is no control
		{in: `C:\data\x1b`, want: `C:\data\x1b`},
		{in: "", want: ""},
		{in: "red\x1b[31mRED\x1b[0m", want: `red\x1b[31mRED\x1b[0m`},
		{in: "title\x1b]0;pwned\x07", want: `title\x1b]0;pwned\a`},
		{in: "a\rb", want: `a\rb`},
		{in: "nul\x00del\x7f", want: `nul\x00del\x7f`},
		{in: "csi\u009b2J", want: `csi\u009b2J`},
		{in: "cat\u202egpj.exe", want: `cat\u202egpj.exe`},
		{in: "\u2066isolate\u2069 \u200e\u200f\u061c", want: `\u2066isolate\u2069 \u200e\u200f\u061c`},
		{in: "line\u2028sep\u2029", want: `line\u2028sep\u2029`},
		{in: "bad\xffutf8\xc3", want: `bad\xffutf8\xc3`},
		{in: "two\nlines\tand a tab", want: `two\nlines\tand a tab`, text: "two\nlines\tand a tab"},
		{in: "stack\n\tmain.go:1\x1b[2J", want: `stack\n\tmain.go:1\x1b[2J`, text: "stack\n\tmain.go:1\\x1b[2J"},
	} {
		if got := sinks.Printable(tc.in); got != tc.want {
			t.Errorf("Printable(%q) = %q, want %q", tc.in, got, tc.want)
		}
		text := tc.text
		if text == "" {
			text = tc.want
		}
		if got := sinks.PrintableText(tc.in); got != text {
			t.Errorf("PrintableText(%q) = %q, want %q", tc.in, got, text)
		}
	}
}

func TestPrintableAllocs(t *testing.T) {
	s := "Ankle boot, T-shirt/top, Bücher"
	if n := testing.AllocsPerRun(100, func() { _ = sinks.Printable(s) }); n != 0 {
		t.Errorf("Printable of a clean string: %v allocations, want 0", n)
	}
}

func ExamplePrintable() {
	fmt.Println(sinks.Printable("Ankle boot"))
	fmt.Println(sinks.Printable("evil\x1b[2Jclass"))
	fmt.Println(sinks.Printable("invoice\u202efdp.exe"))
	// Output:
	// Ankle boot
	// evil\x1b[2Jclass
	// invoice\u202efdp.exe
}
