//go:build race

package main

// raceEnabled reports that the tests run with the race detector: the
// end-to-end tests then build the binary with -race too.
const raceEnabled = true
