package fs

import (
	"math/bits"
	"strings"
	"unicode/utf8"
)

// A Glob is a compiled path pattern. It is immutable and safe for any
// number of goroutines. A nil *Glob matches every path.
//
// A pattern is written like a path. Inside one component, '?' matches
// exactly one character (a UTF-8 rune) and '*' any run of characters,
// possibly empty; every other byte matches itself (there is no escape and
// no character class). A component that is exactly "**" matches any number
// of whole components, including none: "/a/**" matches "/a", "/a/b" and
// "/a/b/c", and "/**" matches every path including "/". A pattern matches
// the whole path, never a prefix.
type Glob struct {
	pattern string
	segs    []segment
	words   int // uint64 words in a state set: bits 0..len(segs)
}

// A segment is one component of a pattern.
type segment struct {
	pat     string // the component pattern ("" for **)
	any     bool   // **: any number of whole components
	literal bool   // no wildcard: matches exactly pat
}

// matchAll is the glob "/**".
var matchAll = mustGlob("/**")

func mustGlob(p string) *Glob {
	g, err := CompileGlob(p)
	if err != nil {
		panic(err)
	}
	return g
}

// CompileGlob compiles pattern. A pattern that breaks the path rules (with
// '*' and '?' allowed in components), or that uses "**" inside a longer
// component, is BAD_PATH.
func CompileGlob(pattern string) (*Glob, error) {
	bad := func(detail string) (*Glob, error) {
		return nil, &Error{Kind: KindBadPath, Path: pattern, Detail: "glob: " + detail}
	}
	if pattern == "" || pattern[0] != '/' {
		return bad("a pattern starts with /")
	}
	if len(pattern) > MaxPath {
		return bad("longer than 4096 bytes")
	}
	g := &Glob{pattern: pattern}
	if pattern != "/" {
		for _, c := range strings.Split(pattern[1:], "/") {
			if d := badComponent(c); d != "" {
				return bad(d)
			}
			if c == "**" {
				if n := len(g.segs); n == 0 || !g.segs[n-1].any {
					g.segs = append(g.segs, segment{any: true})
				}
				continue
			}
			if strings.Contains(c, "**") {
				return bad(`"**" must be a whole component`)
			}
			lit := !strings.ContainsAny(c, "*?")
			g.segs = append(g.segs, segment{pat: c, literal: lit})
		}
	}
	g.words = len(g.segs)/64 + 1
	return g, nil
}

// String returns the pattern the glob was compiled from.
func (g *Glob) String() string {
	if g == nil {
		return "/**"
	}
	return g.pattern
}

// Match reports whether path matches the glob. An invalid path matches
// nothing.
func (g *Glob) Match(path string) bool {
	if g == nil {
		return ValidPath(path) == nil
	}
	if ValidPath(path) != nil {
		return false
	}
	var a, b [1]uint64
	cur, next := a[:], b[:]
	if g.words > 1 {
		cur, next = make([]uint64, g.words), make([]uint64, g.words)
	}
	g.startInto(cur)
	if path == "/" {
		return g.accepts(cur)
	}
	rest := path[1:]
	for {
		c, tail, more := strings.Cut(rest, "/")
		if !g.stepInto(next, cur, c) {
			return false
		}
		cur, next = next, cur
		if !more {
			return g.accepts(cur)
		}
		rest = tail
	}
}

// The matcher is an NFA over components: state i means "segs[i] is next";
// state len(segs) accepts. A state set is a bitset of g.words words.

// start returns a new state set for the root.
func (g *Glob) start() []uint64 {
	s := make([]uint64, g.words)
	g.startInto(s)
	return s
}

func (g *Glob) startInto(s []uint64) {
	clear(s)
	g.add(s, 0)
}

// add puts state i and the states reachable from it without consuming a
// component (skipping a "**") into s.
func (g *Glob) add(s []uint64, i int) {
	for {
		w, b := i/64, uint64(1)<<(i%64)
		if s[w]&b != 0 {
			return
		}
		s[w] |= b
		if i == len(g.segs) || !g.segs[i].any {
			return
		}
		i++
	}
}

// stepInto fills dst with the states reached from src by consuming the
// component name; it reports whether any state is alive.
func (g *Glob) stepInto(dst, src []uint64, name string) bool {
	clear(dst)
	live := false
	for w, word := range src {
		for word != 0 {
			i := w*64 + bits.TrailingZeros64(word)
			word &= word - 1
			if i == len(g.segs) {
				continue
			}
			switch sg := g.segs[i]; {
			case sg.any:
				g.add(dst, i)
				live = true
			case sg.literal && sg.pat == name, !sg.literal && matchComponent(sg.pat, name):
				g.add(dst, i+1)
				live = true
			}
		}
	}
	return live
}

// accepts reports whether the state set s holds the accepting state.
func (g *Glob) accepts(s []uint64) bool {
	n := len(g.segs)
	return s[n/64]&(1<<(n%64)) != 0
}

// literalNext reports how the children of a directory in state s can
// match: none at all (dead), only the one child name (ok), or any child
// (neither: the caller scans them all).
func (g *Glob) literalNext(s []uint64) (name string, ok, dead bool) {
	dead = true
	for w, word := range s {
		for word != 0 {
			i := w*64 + bits.TrailingZeros64(word)
			word &= word - 1
			if i == len(g.segs) {
				continue
			}
			sg := g.segs[i]
			if !sg.literal || (!dead && sg.pat != name) {
				return "", false, false
			}
			name, dead = sg.pat, false
		}
	}
	return name, !dead, dead
}

// matchComponent reports whether the component name matches pat, where '?'
// is one rune and '*' any run of runes. It backtracks only to the last '*',
// so it takes O(len(pat)·len(name)) at worst.
func matchComponent(pat, name string) bool {
	p, s := 0, 0
	star, starS := -1, 0 // the last '*' seen and where its match ends
	for {
		if p < len(pat) && pat[p] == '*' {
			star, starS = p, s
			p++
			continue
		}
		if p < len(pat) && s < len(name) {
			if pat[p] == '?' {
				_, w := utf8.DecodeRuneInString(name[s:])
				p, s = p+1, s+w
				continue
			}
			if pat[p] == name[s] {
				p, s = p+1, s+1
				continue
			}
		}
		if p == len(pat) && s == len(name) {
			return true
		}
		if star < 0 || starS == len(name) {
			return false
		}
		_, w := utf8.DecodeRuneInString(name[starS:])
		starS += w
		p, s = star+1, starS
	}
}
