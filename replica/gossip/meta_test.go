package gossip

import (
	"log/slog"
	"strings"
	"testing"
)

func TestMeta(t *testing.T) {
	for _, m := range []Meta{
		{},
		{ID: 1, Addr: "127.0.0.1:8046", Cluster: "doozerfs"},
		{ID: ^uint64(0), Addr: "[::1]:65535", Cluster: strings.Repeat("c", 200)},
	} {
		b, err := EncodeMeta(m)
		if err != nil {
			t.Fatalf("encode %+v: %v", m, err)
		}
		got, flags, err := decodeMeta(b)
		if err != nil || got != m || flags != 0 {
			t.Errorf("%+v → %x → %+v, %d, %v", m, b, got, flags, err)
		}
		b, _ = encodeMeta(m, metaLeaving|0x80) // unknown flags are ignored
		if got, flags, err := decodeMeta(b); err != nil || got != m || flags&metaLeaving == 0 {
			t.Errorf("with flags: %+v, %d, %v", got, flags, err)
		}
	}

	if _, err := EncodeMeta(Meta{Addr: strings.Repeat("a", 300), Cluster: strings.Repeat("c", 300)}); err == nil {
		t.Error("encoded meta over the limit")
	}
	b, err := EncodeMeta(Meta{Addr: strings.Repeat("a", 250), Cluster: strings.Repeat("c", 250)})
	if err != nil || len(b) > MetaMaxSize {
		t.Errorf("meta of %d bytes: %v", len(b), err)
	}

	good, _ := EncodeMeta(Meta{ID: 300, Addr: "h:1", Cluster: "c"})
	for _, junk := range [][]byte{
		nil,
		{1},
		{2, 0, 0, 0, 0},                        // version 2
		{0, 0, 0, 0, 0},                        // version 0
		{1, 0, 0x80},                           // truncated varint
		{1, 0, 0, 5, 'a'},                      // short string
		{1, 0, 0, 0xff, 0xff, 0xff, 0x0f, 'a'}, // huge length
		append(good[:len(good):len(good)], 0),  // trailing byte
		good[:len(good)-1],
	} {
		if m, err := DecodeMeta(junk); err == nil {
			t.Errorf("DecodeMeta(%x) = %+v", junk, m)
		}
	}
}

func FuzzDecodeMeta(f *testing.F) {
	good, _ := EncodeMeta(Meta{ID: 300, Addr: "h:1", Cluster: "c"})
	f.Add(good)
	f.Add([]byte{1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, flags, err := decodeMeta(b)
		if err != nil {
			return
		}
		again, err := encodeMeta(m, flags)
		if err != nil {
			return // decodes, but over the limit to send
		}
		if string(again) != string(b) {
			t.Fatalf("%x → %+v → %x", b, m, again)
		}
	})
}

func TestParseLogLine(t *testing.T) {
	for _, tc := range []struct {
		in    string
		level slog.Level
		msg   string
	}{
		{"[DEBUG] memberlist: Stream connection from=1.2.3.4:5\n", slog.LevelDebug, "Stream connection from=1.2.3.4:5"},
		{"[INFO] memberlist: Suspect b has failed, no acks received\n", slog.LevelInfo, "Suspect b has failed, no acks received"},
		{"[WARN] memberlist: Refuting a suspect message (from: a)\n", slog.LevelWarn, "Refuting a suspect message (from: a)"},
		{"[ERR] memberlist: Failed to decode ping request: EOF from=1.2.3.4:5\n", slog.LevelError, "Failed to decode ping request: EOF from=1.2.3.4:5"},
		{"[ERROR] memberlist: x\n", slog.LevelError, "x"},
		{"Err: Could not set the deadline: x\n", slog.LevelInfo, "Err: Could not set the deadline: x"},
		{"[odd] thing\n", slog.LevelInfo, "[odd] thing"},
	} {
		level, msg := parseLogLine(tc.in)
		if level != tc.level || msg != tc.msg {
			t.Errorf("parseLogLine(%q) = %v %q; want %v %q", tc.in, level, msg, tc.level, tc.msg)
		}
	}
}
