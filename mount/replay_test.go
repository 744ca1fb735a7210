package mount

import (
	"fmt"
	"strings"
	"testing"

	"github.com/doozerfs/doozerfs/fs"
)

// inferred applies ops to a tree as one revision and returns the replay
// operations inferred from its events, as "kind path[ -> to]".
func inferred(t *testing.T, tree *fs.Tree, ops ...fs.Op) []string {
	t.Helper()
	pre := tree.View()
	res, err := tree.Apply(&fs.Mutation{Kind: fs.MutTxn, Ops: ops})
	if err != nil {
		t.Fatal(err)
	}
	var evs []relEvent
	for _, ev := range res.Events {
		evs = append(evs, relEvent{Event: ev, rel: ev.Path})
	}
	var out []string
	names := map[replayKind]string{rpCreate: "create", rpModify: "modify", rpDelete: "delete", rpRmdir: "rmdir", rpMkdir: "mkdir", rpRename: "rename"}
	for _, op := range infer(pre, tree.View(), evs, func(p string) string { return p }) {
		s := names[op.kind] + " " + op.rel
		if op.kind == rpRename {
			s += " -> " + op.to
		}
		out = append(out, s)
	}
	return out
}

func set(p, body string, rev int64) fs.Op {
	return fs.Op{Kind: fs.OpSet, Path: p, Rev: rev, Body: []byte(body)}
}
func del(p string, rev int64) fs.Op { return fs.Op{Kind: fs.OpDel, Path: p, Rev: rev} }
func mkdir(p string) fs.Op          { return fs.Op{Kind: fs.OpMkdir, Path: p, Rev: fs.Missing} }

func TestInferRecognisesRenamesFromARevisionsEvents(t *testing.T) {
	tree := fs.New(fs.DefaultConfig())
	apply := func(ops ...fs.Op) {
		if _, err := tree.Apply(&fs.Mutation{Kind: fs.MutTxn, Ops: ops}); err != nil {
			t.Fatal(err)
		}
	}
	apply(set("/a", "A", -1), set("/b", "B", -1), set("/d/x", "X", -1), set("/d/s/y", "Y", -1), mkdir("/d/s/e"), mkdir("/t"))

	cases := []struct {
		name string
		ops  []fs.Op
		want string
	}{
		{"a new file", []fs.Op{set("/n", "N", 0)}, "create /n"},
		{"a changed file", []fs.Op{set("/n", "N2", -1)}, "modify /n"},
		{"a file renamed", []fs.Op{set("/a2", "A", 0), del("/a", -1)}, "rename /a -> /a2"},
		{"a file renamed over another", []fs.Op{set("/b", "A", -1), del("/a2", -1)}, "rename /a2 -> /b"},
		{"a file renamed over another in a revision with more", []fs.Op{set("/n", "A", -1), del("/b", -1), set("/m", "M", 0)}, "rename /b -> /n, create /m"},
		{"a directory renamed over an empty one", append(append([]fs.Op{del("/t", -1), mkdir("/t"), set("/t/x", "X", 0), mkdir("/t/s"), set("/t/s/y", "Y", 0), mkdir("/t/s/e")},
			del("/d/s/e", -1), del("/d/s/y", -1), del("/d/s", -1), del("/d/x", -1)), del("/d", -1)), "rename /d -> /t"},
		{"a directory deleted", []fs.Op{del("/t/s/e", -1), del("/t/s/y", -1), del("/t/s", -1)}, "rmdir /t/s/e, delete /t/s/y, rmdir /t/s"},
		{"a directory made with a file", []fs.Op{set("/p/q/r", "R", 0)}, "mkdir /p, mkdir /p/q, create /p/q/r"},
	}
	for _, c := range cases {
		got := strings.Join(inferred(t, tree, c.ops...), ", ")
		if got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
	_ = fmt.Sprint
}
