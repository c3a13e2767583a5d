package trigger

import (
	"strings"
	"testing"
)

func TestTruncateUTF8(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"abc", 5, "abc"},
		{"abc", 3, "abc"},
		{"abcdef", 3, "abc"},
		{"aé", 2, "a"},                      // é is 2 bytes: not cut in half
		{"a€b", 3, "a"},                     // € is 3 bytes
		{"a€b", 4, "a€"},                    //
		{"😀😀", 5, "😀"},                      // 4-byte runes
		{"\x80\x80\x80\x80\x80", 4, "\x80"}, // invalid UTF-8: cut at most 3 bytes further
	} {
		if got := truncateUTF8([]byte(tc.in), tc.n); got != tc.want {
			t.Errorf("truncateUTF8(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func TestValidGlob(t *testing.T) {
	t.Parallel()
	for pattern, want := range map[string]bool{
		"/a/b":                                 true,
		"/a/*.csv":                             true,
		"/a/[a-c]?/*":                          true,
		`/a/\*`:                                true,
		"/a/[*]x*":                             true,
		"/a/[":                                 false,
		"/a/x*[":                               false,
		"/a/*/b*[z-a]":                         true, // a reversed range is not a syntax error
		"/a/[/]b":                              false,
		`/a/b\`:                                false,
		"/a/" + strings.Repeat("*", 10) + "[^": false,
	} {
		if got := validGlob(pattern); got != want {
			t.Errorf("validGlob(%q) = %v, want %v", pattern, got, want)
		}
	}
}
