package pipeline

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Bytes is a size in bytes, as a flow spec writes one (Spec.MaxMemory): a
// whole number of bytes, or a number with a unit, decimal (kB, MB, GB, TB:
// powers of 1000) or binary (KiB, MiB, GiB, TiB: powers of 1024), as in
// "800MB", "1.5GiB" or "16 GiB". -1 is kept as it is (it means "no
// limit" where a field says so).
type Bytes int64

var byteUnits = []struct {
	name string
	size float64
}{
	{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"kB", 1e3}, {"KB", 1e3}, {"B", 1},
}

// ParseBytes reads a size as Bytes documents.
func ParseBytes(s string) (Bytes, error) {
	t := strings.TrimSpace(s)
	if t == "-1" {
		return -1, nil
	}
	num, mult := t, 1.0
	for _, u := range byteUnits {
		if rest, ok := strings.CutSuffix(t, u.name); ok {
			num, mult = strings.TrimSpace(rest), u.size
			break
		}
	}
	if i, err := strconv.ParseInt(num, 10, 64); err == nil && mult == 1 {
		return Bytes(i), nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%q is not a size: want bytes, or a number with a unit (800MB, 16GiB)", s)
	}
	v := f * mult
	if v >= math.MaxInt64 || v <= math.MinInt64 {
		return 0, fmt.Errorf("%q is too large a size", s)
	}
	return Bytes(math.Round(v)), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseBytes.
func (b *Bytes) UnmarshalText(text []byte) error {
	v, err := ParseBytes(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// MarshalText writes b in the largest binary unit that divides it
// ("16GiB"), else in bytes, so that ParseBytes reads back the same value.
func (b Bytes) MarshalText() ([]byte, error) {
	if b > 0 {
		for _, u := range byteUnits[:4] {
			if int64(b)%int64(u.size) == 0 {
				return []byte(fmt.Sprintf("%d%s", int64(b)/int64(u.size), u.name)), nil
			}
		}
	}
	return []byte(strconv.FormatInt(int64(b), 10)), nil
}

// String writes b for people, to about three significant digits in
// binary units: "1.37 GiB", "512 MiB", "900 B".
func (b Bytes) String() string {
	v := float64(b)
	for _, u := range byteUnits[:4] {
		if x := math.Abs(v) / u.size; x >= 1 {
			prec := 0
			if x < 10 {
				prec = 2
			} else if x < 100 {
				prec = 1
			}
			return strconv.FormatFloat(v/u.size, 'f', prec, 64) + " " + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10) + " B"
}
