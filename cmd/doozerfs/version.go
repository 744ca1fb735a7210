package main

// Version is the doozerfs release, printed by `doozerfs version` and sent in
// HELLO. Set at build time with -ldflags "-X main.Version=...".
var Version = "0.1.0-dev"
