package fs

import (
	"fmt"
	"strings"
	"testing"
)

func viewTree(t *testing.T) *View {
	t.Helper()
	tr := New(Config{})
	mustOps(t, tr, set("/a/b", 0, "ab"), set("/a-c", 0, "a-c"), set("/a/d/e", 0, "ade"), mkdir("/z", 0), set("/f", 0, ""))
	return tr.View()
}

func TestReadsReportTheRightErrors(t *testing.T) {
	v := viewTree(t)
	tests := []struct {
		path              string
		get, stat, getdir error
		wantType          NodeType
	}{
		{"/a/b", nil, nil, ErrNotDir, TypeFile},
		{"/a", ErrIsDir, nil, nil, TypeDir},
		{"/", ErrIsDir, nil, nil, TypeDir},
		{"/f", nil, nil, ErrNotDir, TypeFile},
		{"/nope", ErrNoEnt, ErrNoEnt, ErrNoEnt, TypeNone},
		{"/nope/deeper", ErrNoEnt, ErrNoEnt, ErrNoEnt, TypeNone},
		{"/a/b/c", ErrNotDir, ErrNotDir, ErrNotDir, TypeNone},
		{"/a/", ErrBadPath, ErrBadPath, ErrBadPath, TypeNone},
		{"", ErrBadPath, ErrBadPath, ErrBadPath, TypeNone},
	}
	for _, tc := range tests {
		_, _, err := v.Get(tc.path)
		wantErr(t, "Get("+tc.path+")", err, tc.get)
		st, err := v.Stat(tc.path)
		wantErr(t, "Stat("+tc.path+")", err, tc.stat)
		if st.Type != tc.wantType {
			t.Errorf("Stat(%s).Type = %s, want %s", tc.path, st.Type, tc.wantType)
		}
		_, err = v.GetDir(tc.path)
		wantErr(t, "GetDir("+tc.path+")", err, tc.getdir)
	}
}

func TestGetDirListsSortedEntriesWithTypes(t *testing.T) {
	v := viewTree(t)
	got, err := v.GetDir("/")
	if err != nil {
		t.Fatal(err)
	}
	want := []DirEntry{{"a", TypeDir}, {"a-c", TypeFile}, {"f", TypeFile}, {"z", TypeDir}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("GetDir(/) = %v, want %v", got, want)
	}
	if got, _ := v.GetDir("/z"); len(got) != 0 || got == nil {
		t.Errorf("GetDir(/z) = %#v, want an empty non-nil list", got)
	}
}

func TestStatOfADirectoryCountsItsChildren(t *testing.T) {
	st, _ := viewTree(t).Stat("/a")
	if st.Type != TypeDir || st.Children != 2 || st.Size != 2 {
		t.Errorf("Stat(/a) = %+v, want a dir with 2 children", st)
	}
}

func TestWalkVisitsMatchingFilesDepthFirstInNameOrder(t *testing.T) {
	v := viewTree(t)
	tests := []struct {
		glob string
		want string
	}{
		// "/a" sorts before "/a-c", so its subtree comes first, although
		// "/a-c" < "/a/b" as strings.
		{"/**", "/a/b /a/d/e /a-c /f"},
		{"/*", "/a-c /f"},
		{"/a/**", "/a/b /a/d/e"},
		{"/a*", "/a-c"},
		{"/**/e", "/a/d/e"},
		{"/a/?", "/a/b"},
		{"/z/**", ""},
		{"/", ""},
		{"/nope/**", ""},
	}
	for _, tc := range tests {
		var got []string
		err := v.Walk(mustGlob(tc.glob), func(p string, st Stat, body []byte) bool {
			if st.Type != TypeFile {
				t.Errorf("Walk passed a %s", st.Type)
			}
			got = append(got, p)
			return true
		})
		if err != nil || strings.Join(got, " ") != tc.want {
			t.Errorf("Walk(%s) = %q, %v; want %q", tc.glob, strings.Join(got, " "), err, tc.want)
		}
	}
}

func TestWalkWithNilGlobVisitsEveryFile(t *testing.T) {
	n := 0
	viewTree(t).Walk(nil, func(string, Stat, []byte) bool { n++; return true })
	if n != 4 {
		t.Errorf("visited %d files, want 4", n)
	}
}

func TestWalkStopsWhenFnReturnsFalse(t *testing.T) {
	var got []string
	viewTree(t).Walk(nil, func(p string, _ Stat, _ []byte) bool {
		got = append(got, p)
		return len(got) < 2
	})
	if strings.Join(got, " ") != "/a/b /a/d/e" {
		t.Errorf("visited %v, want the first two", got)
	}
}

func TestWalkPassesBodiesAndStats(t *testing.T) {
	viewTree(t).Walk(mustGlob("/a/d/e"), func(p string, st Stat, body []byte) bool {
		if string(body) != "ade" || st.Size != 3 || st.Rev != 3 {
			t.Errorf("Walk gave %q %+v", body, st)
		}
		return true
	})
}

func TestAViewDoesNotChangeWhenTheTreeDoes(t *testing.T) {
	tr := New(Config{})
	mustOps(t, tr, set("/a", 0, "1"))
	v := tr.View()
	before := dump(t, v)
	mustOps(t, tr, set("/a", -1, "2"), set("/b/c", 0, "3"), del("/a", -1))
	if got := dump(t, v); got != before || v.Rev() != 1 {
		t.Errorf("view at 1 changed:\n%s\nwas\n%s", got, before)
	}
}
