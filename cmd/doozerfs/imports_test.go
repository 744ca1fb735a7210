package main

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// allowedInternal lists, for each package prefix of the module, which other
// packages of the module it may import (ARCHITECTURE: the direction of
// imports). A package not listed here may import nothing of the module.
var allowedInternal = map[string][]string{
	"fs":        {},
	"consensus": {},
	"wire":      {"fs"},
	"mount":     {"wire", "fs"},
	"replica":   {"consensus", "fs", "wire"},
	"cmd":       {"replica", "mount", "wire", "fs", "consensus"},
}

// stdlibOnly are the packages that import nothing outside the standard
// library, even in their tests.
var stdlibOnly = []string{"fs", "consensus"}

const module = "github.com/doozerfs/doozerfs"

type listedPackage struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
}

func listPackages(t *testing.T) []listedPackage {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p listedPackage
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// top returns the first path element of a module-internal package, such as
// "replica" for github.com/doozerfs/doozerfs/replica/wal.
func top(importPath string) string {
	rel := strings.TrimPrefix(strings.TrimPrefix(importPath, module), "/")
	top, _, _ := strings.Cut(rel, "/")
	return top
}

func isStdlib(importPath string) bool {
	first, _, _ := strings.Cut(importPath, "/")
	return !strings.Contains(first, ".")
}

func TestPackagesImportOnlyInTheAllowedDirection(t *testing.T) {
	for _, p := range listPackages(t) {
		from := top(p.ImportPath)
		allowed, known := allowedInternal[from]
		if !known {
			t.Errorf("%s: top-level directory %q is not in the architecture", p.ImportPath, from)
			continue
		}
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			to := top(imp)
			if to == from {
				continue
			}
			if !contains(allowed, to) {
				t.Errorf("%s imports %s: %s may import only %v of the module", p.ImportPath, imp, from, allowed)
			}
		}
	}
}

func TestFsAndConsensusImportOnlyTheStandardLibrary(t *testing.T) {
	for _, p := range listPackages(t) {
		if !contains(stdlibOnly, top(p.ImportPath)) {
			continue
		}
		all := append(append(append([]string{}, p.Imports...), p.TestImports...), p.XTestImports...)
		for _, imp := range all {
			if isStdlib(imp) || top(imp) == top(p.ImportPath) && strings.HasPrefix(imp, module+"/") {
				continue
			}
			t.Errorf("%s imports %s: it may import only the standard library", p.ImportPath, imp)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
