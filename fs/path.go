package fs

import (
	"strings"
	"unicode/utf8"
)

// Limits of the path rules (SPEC §1).
const (
	MaxPath      = 4096 // bytes in a whole path
	MaxComponent = 255  // bytes in one component
)

// CtlPath is the subtree that only System mutations may write.
const CtlPath = "/ctl"

// ValidPath reports whether p is a valid path: "/", or one or more
// "/"-separated components, each 1–255 bytes of valid UTF-8 without NUL and
// neither "." nor "..", the whole at most 4096 bytes. It returns nil or an
// *Error of kind KindBadPath.
func ValidPath(p string) error {
	if p == "/" {
		return nil
	}
	if p == "" || p[0] != '/' {
		return &Error{Kind: KindBadPath, Path: p, Detail: "a path starts with /"}
	}
	if len(p) > MaxPath {
		return &Error{Kind: KindBadPath, Path: p[:64] + "…", Detail: "longer than 4096 bytes"}
	}
	rest := p[1:]
	for {
		c, tail, more := strings.Cut(rest, "/")
		if detail := badComponent(c); detail != "" {
			return &Error{Kind: KindBadPath, Path: p, Detail: detail}
		}
		if !more {
			return nil
		}
		rest = tail
	}
}

// badComponent says what is wrong with one path component, or "" if nothing.
func badComponent(c string) string {
	switch {
	case c == "":
		return "empty component (// or a trailing /)"
	case len(c) > MaxComponent:
		return "component longer than 255 bytes"
	case c == "." || c == "..":
		return "component . or .."
	case strings.IndexByte(c, 0) >= 0:
		return "NUL in a component"
	case !utf8.ValidString(c):
		return "component is not valid UTF-8"
	}
	return ""
}

// split returns the components of a valid path; nil for "/".
func split(p string) []string {
	if p == "/" {
		return nil
	}
	return strings.Split(p[1:], "/")
}

// splitInto is split appending to dst[:0], so that a caller can give it a
// buffer of its own.
func splitInto(dst []string, p string) []string {
	dst = dst[:0]
	for rest := p[1:]; rest != ""; {
		var c string
		c, rest, _ = strings.Cut(rest, "/")
		dst = append(dst, c)
	}
	return dst
}

// join is the inverse of split.
func join(comps []string) string {
	if len(comps) == 0 {
		return "/"
	}
	return "/" + strings.Join(comps, "/")
}

// child returns the path of the entry name inside the directory dir.
func child(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// isCtl reports whether the valid path p is /ctl or below it.
func isCtl(p string) bool {
	return p == CtlPath || strings.HasPrefix(p, CtlPath+"/")
}
