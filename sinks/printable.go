package sinks

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Printable returns s made safe to print on a terminal, for the strings a
// dataset or a file provides (class names, paths, origins in skip
// messages, names in metadata): every character that a terminal would act
// on rather than show, or that reorders what follows, is written as the Go
// escape that strconv.Quote uses for it: control characters (C0 such as
// ESC "\x1b", "\n" and "\t", DEL, C1 such as "\u009b"), bidirectional
// controls ("\u202e", "\u2066"…), the line and paragraph separators
// ("\u2028", "\u2029"), and bytes that are not UTF-8 ("\xff"). Everything
// else, spaces and all printable Unicode included, is kept as it is, so
// that "T-shirt/top" or "Bücher" print unchanged. A backslash is kept too:
// the escaped form of a character can also be a name's literal text.
//
// It allocates only when s has something to escape.
func Printable(s string) string { return escape(s, false) }

// PrintableText is Printable for a message of several lines, such as an
// error with a stack trace: it keeps newlines and tabs as they are.
func PrintableText(s string) string { return escape(s, true) }

func escape(s string, text bool) string {
	bad := func(r rune, size int) bool {
		if r == utf8.RuneError && size == 1 {
			return true
		}
		if text && (r == '\n' || r == '\t') {
			return false
		}
		return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == '\u2028' || r == '\u2029'
	}
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if bad(r, size) {
			break
		}
		i += size
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			const hex = "0123456789abcdef"
			b.WriteString(`\x`)
			b.WriteByte(hex[s[i]>>4])
			b.WriteByte(hex[s[i]&0xf])
		case bad(r, size):
			q := strconv.QuoteRuneToASCII(r) // '\x1b', '\u202e'
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}
