//go:build race

package fs

// raceEnabled is true when the tests run under the race detector, which
// makes them several times slower; the longest tests run fewer cases.
const raceEnabled = true
