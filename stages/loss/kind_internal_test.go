package loss

import "testing"

func TestOrList(t *testing.T) {
	for _, tc := range []struct {
		names []string
		want  string
	}{
		{nil, ""},
		{[]string{"a"}, `"a"`},
		{[]string{"a", "b"}, `"a" or "b"`},
		{[]string{"a", "b", "c"}, `"a", "b" or "c"`},
	} {
		if got := orList(tc.names); got != tc.want {
			t.Errorf("orList(%q) = %s, want %s", tc.names, got, tc.want)
		}
	}
}
