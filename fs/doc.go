// Package fs is the doozerfs namespace: a versioned tree of files and
// directories, as a pure, deterministic state machine.
//
// It imports only the standard library. See docs/data-model.md.
package fs
