// Command doozerfs is the one binary of doozerfs: the replica server, the
// mount, and the client commands. Run `doozerfs help` for the list.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "doozerfs: the replica is not built yet; see README.md")
	os.Exit(2)
}
