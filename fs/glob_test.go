package fs

import (
	"errors"
	"strings"
	"testing"
)

func TestGlobMatchesAsDocumented(t *testing.T) {
	tests := []struct {
		pattern string
		yes, no []string
	}{
		{"/", []string{"/"}, []string{"/a"}},
		{"/a", []string{"/a"}, []string{"/", "/ab", "/a/b", "/b"}},
		{"/*", []string{"/a", "/abc", "/ctl"}, []string{"/", "/a/b"}},
		{"/a*", []string{"/a", "/ab", "/abc"}, []string{"/ba", "/a/b", "/"}},
		{"/*b", []string{"/b", "/ab", "/bbb"}, []string{"/ba", "/a/b"}},
		{"/a*c*e", []string{"/ace", "/abcde", "/acce", "/aXcYcZe"}, []string{"/acd", "/aec"}},
		{"/?", []string{"/a", "/é", "/世"}, []string{"/", "/ab", "/a/b"}},
		{"/??", []string{"/ab", "/éé"}, []string{"/a", "/abc"}},
		{"/a?c", []string{"/abc", "/aéc"}, []string{"/ac", "/abbc", "/a/c"}},
		{"/**", []string{"/", "/a", "/a/b/c", "/ctl/node/x"}, nil},
		{"/a/**", []string{"/a", "/a/b", "/a/b/c"}, []string{"/", "/ab", "/b/a"}},
		{"/**/b", []string{"/b", "/a/b", "/a/x/b"}, []string{"/", "/a", "/b/a", "/ab"}},
		{"/a/**/b", []string{"/a/b", "/a/x/b", "/a/x/y/b"}, []string{"/a", "/b", "/a/x"}},
		{"/**/**", []string{"/", "/a", "/a/b"}, nil},
		{"/svc/*/addr", []string{"/svc/web/addr", "/svc/db/addr"}, []string{"/svc/addr", "/svc/a/b/addr"}},
		{"/a.b", []string{"/a.b"}, []string{"/aXb"}},
		{"/a\\*", []string{"/a\\x", "/a\\"}, []string{"/a*", "/ax"}},
		{"/[ab]", []string{"/[ab]"}, []string{"/a"}},
		{"/*/*", []string{"/a/b"}, []string{"/a", "/a/b/c"}},
	}
	for _, tc := range tests {
		g, err := CompileGlob(tc.pattern)
		if err != nil {
			t.Fatalf("CompileGlob(%q): %v", tc.pattern, err)
		}
		if g.String() != tc.pattern {
			t.Errorf("String() = %q, want %q", g.String(), tc.pattern)
		}
		for _, p := range tc.yes {
			if !g.Match(p) {
				t.Errorf("%q should match %q", tc.pattern, p)
			}
		}
		for _, p := range tc.no {
			if g.Match(p) {
				t.Errorf("%q should not match %q", tc.pattern, p)
			}
		}
	}
}

func TestCompileGlobRejectsBadPatternsAsBadPath(t *testing.T) {
	for _, p := range []string{
		"", "a", "*", "/a/", "//", "/a//b", "/.", "/a/..", "/a**", "/**b", "/a/***", "/x\x00", "/\xff",
		"/" + strings.Repeat("a", 256), "/" + strings.Repeat("a/", 2048),
	} {
		if _, err := CompileGlob(p); !errors.Is(err, ErrBadPath) {
			t.Errorf("CompileGlob(%.30q) = %v, want BAD_PATH", p, err)
		}
	}
}

func TestGlobMatchesNoInvalidPath(t *testing.T) {
	g, _ := CompileGlob("/**")
	for _, p := range []string{"", "a", "/a/", "//"} {
		if g.Match(p) {
			t.Errorf("/** matched invalid path %q", p)
		}
	}
}

func TestNilGlobMatchesEveryValidPath(t *testing.T) {
	var g *Glob
	if !g.Match("/a/b") || !g.Match("/") || g.Match("a") || g.String() != "/**" {
		t.Errorf("nil glob: Match or String wrong")
	}
}

func TestGlobWithManySegmentsUsesMoreThanOneStateWord(t *testing.T) {
	pat := "/" + strings.Repeat("*/**/", 40) + "x"
	g, err := CompileGlob(pat)
	if err != nil {
		t.Fatal(err)
	}
	if g.words < 2 {
		t.Fatalf("pattern of %d segments uses %d words", len(g.segs), g.words)
	}
	path := "/" + strings.Repeat("a/", 45) + "x"
	if got, want := g.Match(path), naiveMatch(pat, path); got != want {
		t.Errorf("Match = %v, naive = %v", got, want)
	}
	if g.Match("/" + strings.Repeat("a/", 39) + "x") {
		t.Errorf("matched a path with too few components")
	}
}

func TestGlobOnHostileInputStaysFast(t *testing.T) {
	// Backtracking matchers explode on these; ours is O(len·len).
	pat := "/" + strings.Repeat("*a", 100) + "b"
	g, err := CompileGlob(pat)
	if err != nil {
		t.Fatal(err)
	}
	if g.Match("/" + strings.Repeat("a", 250)) {
		t.Errorf("matched")
	}
	deep := "/" + strings.Repeat("**/a/", 600) + "b"
	g, err = CompileGlob(deep)
	if err != nil {
		t.Fatal(err)
	}
	if g.Match("/" + strings.Repeat("a/", 1500) + "c") {
		t.Errorf("matched")
	}
}
