package fs

import (
	"errors"
	"strings"
	"testing"
)

func TestValidPathFollowsTheSpecRules(t *testing.T) {
	long := strings.Repeat("x", 255)
	deep := strings.Repeat("/"+strings.Repeat("d", 254), 16) // 16 × 255 = 4080 bytes
	tests := []struct {
		path string
		ok   bool
	}{
		{"/", true},
		{"/a", true},
		{"/a/b/c", true},
		{"/my_app.conf", true},
		{"/with space/and=equals:colon", true},
		{"/日本/語", true},
		{"/.hidden", true},
		{"/a..b", true},
		{"/...", true},
		{"/" + long, true},
		{deep, true},
		{deep + "/abcdefghijklmno", true},   // exactly 4096 bytes
		{deep + "/abcdefghijklmnop", false}, // 4097 bytes
		{"/" + long + "x", false},           // a 256-byte component
		{"", false},
		{"a", false},
		{"a/b", false},
		{"//", false},
		{"/a/", false},
		{"/a//b", false},
		{"/.", false},
		{"/..", false},
		{"/a/./b", false},
		{"/a/../b", false},
		{"/a\x00b", false},
		{"/\xff", false},
		{"/a/\xc3", false}, // truncated UTF-8
	}
	for _, tc := range tests {
		err := ValidPath(tc.path)
		if tc.ok && err != nil {
			t.Errorf("ValidPath(%.40q) = %v, want nil", tc.path, err)
		}
		if !tc.ok && !errors.Is(err, ErrBadPath) {
			t.Errorf("ValidPath(%.40q) = %v, want BAD_PATH", tc.path, err)
		}
	}
	if len(deep+"/abcdefghijklmno") != MaxPath {
		t.Fatalf("test path is %d bytes, want %d", len(deep+"/abcdefghijklmno"), MaxPath)
	}
}

func TestSplitAndJoinAreInverses(t *testing.T) {
	for _, p := range []string{"/", "/a", "/a/b", "/x/y/z"} {
		if got := join(split(p)); got != p {
			t.Errorf("join(split(%q)) = %q", p, got)
		}
	}
}

func TestIsCtlCoversCtlAndBelowOnly(t *testing.T) {
	tests := map[string]bool{"/ctl": true, "/ctl/node/a": true, "/ctlx": false, "/a/ctl": false, "/": false}
	for p, want := range tests {
		if got := isCtl(p); got != want {
			t.Errorf("isCtl(%q) = %v, want %v", p, got, want)
		}
	}
}
