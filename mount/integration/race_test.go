//go:build race

package integration

// A test binary built with the race detector builds the daemons with it
// too, and a race they report fails the test that ran them.
func init() { raceFlags = []string{"-race"} }
