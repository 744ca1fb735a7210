package wire

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/doozerfs/doozerfs/fs"
)

// payload strips the length prefix from a frame made by an Append function.
func payload(t testing.TB, frame []byte) []byte {
	t.Helper()
	p, err := ReadFrame(strings.NewReader(string(frame)), nil, 0)
	if err != nil {
		t.Fatalf("ReadFrame of our own frame: %v", err)
	}
	return p
}

func encodeRequest(t testing.TB, req *Request) []byte {
	t.Helper()
	b, err := AppendRequest(nil, req, 0)
	if err != nil {
		t.Fatalf("AppendRequest: %v", err)
	}
	return payload(t, b)
}

func encodeResponse(t testing.TB, resp *Response) []byte {
	t.Helper()
	b, err := AppendResponse(nil, resp, 0)
	if err != nil {
		t.Fatalf("AppendResponse: %v", err)
	}
	return payload(t, b)
}

// everyRequest has one request of each verb, with every field it uses set.
var everyRequest = []Request{
	{Tag: 1, Verb: VerbGet, Path: "/a/b", Rev: 7, MinRev: 9, Consistent: true},
	{Tag: 2, Verb: VerbSet, Path: "/a", Rev: fs.Clobber, Body: []byte("x\n"), Lease: 3},
	{Tag: 3, Verb: VerbSet, Path: "/a", Rev: fs.Missing, Body: []byte("new")},
	{Tag: 4, Verb: VerbDel, Path: "/a", Rev: 12},
	{Tag: 5, Verb: VerbMkdir, Path: "/d", Rev: fs.Missing},
	{Tag: 6, Verb: VerbTxn, Ops: []fs.Op{
		{Kind: fs.OpCheck, Path: "/c", Rev: 4},
		{Kind: fs.OpSet, Path: "/n", Rev: fs.Missing, Body: []byte{0, 1, 2}, Lease: 8},
		{Kind: fs.OpDel, Path: "/o", Rev: fs.Clobber},
		{Kind: fs.OpMkdir, Path: "/m", Rev: 1 << 40},
	}},
	{Tag: 7, Verb: VerbRev, MinRev: 100},
	{Tag: 8, Verb: VerbStat, Path: "/", Rev: 3},
	{Tag: 9, Verb: VerbGetDir, Path: "/ctl/node"},
	{Tag: 10, Verb: VerbWalk, Path: "/**", Rev: 5},
	{Tag: 11, Verb: VerbWait, Path: "/svc/*", Rev: 44},
	{Tag: 12, Verb: VerbWatch, Path: "/svc/**", Rev: fs.Missing, MinRev: 3},
	{Tag: 13, Verb: VerbCancel, Other: 12},
	{Tag: 14, Verb: VerbNop},
	{Tag: 15, Verb: VerbLeaseGrant, TTL: 10 * time.Second},
	{Tag: 16, Verb: VerbLeaseRenew, Lease: 77},
	{Tag: 17, Verb: VerbLeaseRevoke, Lease: 77},
	{Tag: 18, Verb: VerbMembers},
	{Tag: 1<<32 - 1, Verb: VerbSelf},
	{Tag: 20, Verb: VerbSnapshot},
}

func TestEveryRequestRoundTrips(t *testing.T) {
	for _, want := range everyRequest {
		t.Run(want.Verb.String(), func(t *testing.T) {
			var got Request
			if err := DecodeRequest(encodeRequest(t, &want), &got); err != nil {
				t.Fatalf("DecodeRequest: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}
}

// everyResponse has one response of each shape a verb answers with.
var everyResponse = []Response{
	{Tag: 1, Rev: 9, Body: []byte("hello"), Stat: fs.Stat{Type: fs.TypeFile, Size: 5, Rev: 7, Time: 1700000000123456789, Lease: 2}},
	{Tag: 2, Rev: 10},
	{Tag: 3, Err: &fs.Error{Kind: fs.KindRevMismatch, Path: "/a", Detail: "rev 3 > 2"}, Rev: 10},
	{Tag: 4, Err: &fs.Error{Kind: fs.KindOther}},
	{Tag: 5, Rev: 3, Stat: fs.Stat{Type: fs.TypeDir, Size: 2, Rev: 3, Children: 2}},
	{Tag: 6, Rev: 3, Entries: []fs.DirEntry{{Name: "a", Type: fs.TypeFile}, {Name: "b", Type: fs.TypeDir}}},
	{Tag: 7, Rev: 3, Entries: []fs.DirEntry{}},
	{Tag: 8, Rev: 3, Files: []File{
		{Path: "/a", Stat: fs.Stat{Type: fs.TypeFile, Size: 1, Rev: 2}, Body: []byte("1")},
		{Path: "/b", Stat: fs.Stat{Type: fs.TypeFile, Rev: 3}},
	}},
	{Tag: 9, More: true, Rev: 12, Events: []fs.Event{
		{Rev: 11, Path: "/a", Kind: fs.EventSet, Body: []byte("v"), Time: 5, Lease: 1},
		{Rev: 12, Path: "/b", Kind: fs.EventDel, Time: 6},
		{Rev: 12, Path: "/c", Kind: fs.EventMkdir, Time: 6},
	}},
	{Tag: 10, More: true, Rev: 40},
	{Tag: 11, Lease: 99, TTL: 15 * time.Second, Rev: 41},
	{Tag: 12, Rev: 41, Members: []Member{
		{Name: "a", ID: 1, Addr: "10.0.0.1:8046", Role: RoleVoter, State: StateAlive, Leader: true, Applied: 41},
		{Name: "b", ID: 1 << 63, Addr: "10.0.0.2:8046", Role: RoleLearner, State: StateSuspect, Applied: 30},
	}},
	{Tag: 13, Rev: 41, Self: &Self{Name: "a", ID: 1, Addr: "10.0.0.1:8046", Cluster: "prod", Role: RoleVoter,
		Leader: "a", Applied: 41, Lag: 2, Version: "v0.1.0"}},
	{Tag: 14, More: true, Size: 1 << 33, Rev: 41},
	{Tag: 14, More: true, Body: make([]byte, 70000)},
	{Tag: 0, Err: &fs.Error{Kind: fs.KindBadRequest, Detail: "undecodable frame"}},
	// Every field at once, to cross the 16-entry map header.
	{Tag: 15, More: true, Err: &fs.Error{Kind: fs.KindOther, Path: "/p", Detail: "d"}, Rev: 1, Body: []byte("b"),
		Stat: fs.Stat{Type: fs.TypeFile}, Entries: []fs.DirEntry{}, Files: []File{}, Events: []fs.Event{},
		Lease: 1, TTL: 1, Members: []Member{}, Self: &Self{Name: "s"}, Size: 1},
}

func TestEveryResponseRoundTrips(t *testing.T) {
	for _, want := range everyResponse {
		var got Response
		if err := DecodeResponse(encodeResponse(t, &want), &got); err != nil {
			t.Fatalf("DecodeResponse(tag %d): %v", want.Tag, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %+v, want %+v", got, want)
		}
	}
}

// TestRequestBytesAreWhatMsgpackLibrarySees checks our encoder against
// vmihailenco/msgpack: every request decodes there to the documented keys.
func TestRequestBytesAreWhatMsgpackLibrarySees(t *testing.T) {
	req := Request{Tag: 300, Verb: VerbSet, Path: "/a", Rev: -70000, Body: []byte("xyz"), Lease: 1 << 40}
	var got map[string]any
	if err := msgpack.Unmarshal(encodeRequest(t, &req), &got); err != nil {
		t.Fatalf("msgpack.Unmarshal: %v", err)
	}
	want := map[string]any{"t": uint16(300), "v": int8(2), "p": "/a", "r": int32(-70000), "b": []byte("xyz"), "l": uint64(1 << 40)}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v, want %#v", got, want)
	}
}

func TestRequestFromMsgpackLibraryDecodes(t *testing.T) {
	type op struct {
		K int    `msgpack:"k"`
		P string `msgpack:"p"`
		R int64  `msgpack:"r"`
		B []byte `msgpack:"b"`
	}
	type txn struct {
		T uint32 `msgpack:"t"`
		V uint8  `msgpack:"v"`
		O []op   `msgpack:"o"`
		M int64  `msgpack:"m"`
	}
	b, err := msgpack.Marshal(txn{T: 5, V: uint8(VerbTxn), O: []op{{K: 1, P: "/x", R: -1, B: []byte("1")}}, M: 3})
	if err != nil {
		t.Fatal(err)
	}
	var got Request
	if err := DecodeRequest(b, &got); err != nil {
		t.Fatalf("DecodeRequest: %v", err)
	}
	want := Request{Tag: 5, Verb: VerbTxn, MinRev: 3, Ops: []fs.Op{{Kind: fs.OpSet, Path: "/x", Rev: -1, Body: []byte("1")}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestIntegersOfEverySizeRoundTrip(t *testing.T) {
	for _, v := range []int64{0, 1, 127, 128, 255, 256, 65535, 65536, 1<<32 - 1, 1 << 32, 1<<63 - 1,
		-1, -32, -33, -128, -129, -32768, -32769, -1 << 31, -1<<31 - 1, -1 << 63} {
		b := appendInt(nil, v)
		var lib int64
		if err := msgpack.Unmarshal(b, &lib); err != nil || lib != v {
			t.Errorf("msgpack library reads %d as %d, %v", v, lib, err)
		}
		r := reader{b: b}
		if got := r.int("v"); got != v || r.err != nil || r.i != len(b) {
			t.Errorf("reader reads %d as %d, %v", v, got, r.err)
		}
	}
}

func TestStringsAndBytesOfEverySizeRoundTrip(t *testing.T) {
	for _, n := range []int{0, 31, 32, 255, 256, 65535, 65536} {
		s := strings.Repeat("é", n/2) + strings.Repeat("x", n%2)
		var lib string
		if err := msgpack.Unmarshal(appendStr(nil, s), &lib); err != nil || lib != s {
			t.Errorf("msgpack library reads a string of %d bytes wrong: %v", len(s), err)
		}
		var libBytes []byte
		if err := msgpack.Unmarshal(appendBin(nil, []byte(s)), &libBytes); err != nil || string(libBytes) != s {
			t.Errorf("msgpack library reads %d bytes wrong: %v", len(s), err)
		}
		r := reader{b: appendStr(nil, s)}
		if got := r.str("s"); got != s || r.err != nil {
			t.Errorf("reader reads a string of %d bytes wrong: %v", len(s), r.err)
		}
	}
}

func TestUnknownFieldsAreSkipped(t *testing.T) {
	b, err := msgpack.Marshal(map[string]any{
		"t": 4, "v": int(VerbGet), "p": "/a",
		"future": map[string]any{"x": []any{1, "two", 3.0, nil, true}},
		"z":      -5,
	})
	if err != nil {
		t.Fatal(err)
	}
	var got Request
	if err := DecodeRequest(b, &got); err != nil {
		t.Fatalf("DecodeRequest: %v", err)
	}
	if want := (Request{Tag: 4, Verb: VerbGet, Path: "/a"}); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestNilFieldIsTheSameAsAbsent(t *testing.T) {
	b, _ := msgpack.Marshal(map[string]any{"t": 4, "v": int(VerbGet), "p": "/a", "r": nil})
	var got Request
	if err := DecodeRequest(b, &got); err != nil || got.Rev != 0 {
		t.Errorf("got %+v, %v; want rev 0, no error", got, err)
	}
	b, _ = msgpack.Marshal(map[string]any{"t": 4, "v": int(VerbSet), "p": "/a", "r": nil})
	if err := DecodeRequest(b, &got); !errors.Is(err, fs.ErrBadRequest) {
		t.Errorf("SET with a nil rev: got %v, want BAD_REQUEST (rev is required)", err)
	}
}

func TestBadRequestsAreRejectedWithTheirTag(t *testing.T) {
	cases := []struct {
		name    string
		msg     map[string]any
		kind    fs.Kind
		wantTag uint32
	}{
		{"unknown verb", map[string]any{"t": 3, "v": 200}, fs.KindUnknownVerb, 3},
		{"verb zero", map[string]any{"t": 3, "v": 0}, fs.KindUnknownVerb, 3},
		{"no verb", map[string]any{"t": 3, "p": "/a"}, fs.KindUnknownVerb, 3},
		{"no tag", map[string]any{"v": 1, "p": "/a"}, fs.KindBadRequest, 0},
		{"tag zero", map[string]any{"t": 0, "v": 1, "p": "/a"}, fs.KindBadRequest, 0},
		{"tag too big", map[string]any{"t": int64(1) << 32, "v": 1, "p": "/a"}, fs.KindBadRequest, 0},
		{"negative tag", map[string]any{"t": -1, "v": 1, "p": "/a"}, fs.KindBadRequest, 0},
		{"tag of wrong type", map[string]any{"t": "3", "v": 1, "p": "/a"}, fs.KindBadRequest, 0},
		{"path of wrong type", map[string]any{"t": 3, "v": 1, "p": 17}, fs.KindBadRequest, 3},
		{"rev of wrong type", map[string]any{"t": 3, "v": 2, "p": "/a", "r": "1"}, fs.KindBadRequest, 3},
		{"rev a float", map[string]any{"t": 3, "v": 2, "p": "/a", "r": 1.0}, fs.KindBadRequest, 3},
		{"consistent an int", map[string]any{"t": 3, "v": 1, "p": "/a", "c": 1}, fs.KindBadRequest, 3},
		{"GET without path", map[string]any{"t": 3, "v": 1}, fs.KindBadRequest, 3},
		{"SET without rev", map[string]any{"t": 3, "v": 2, "p": "/a", "b": []byte("x")}, fs.KindBadRequest, 3},
		{"DEL without rev", map[string]any{"t": 3, "v": 3, "p": "/a"}, fs.KindBadRequest, 3},
		{"TXN without ops", map[string]any{"t": 3, "v": 5}, fs.KindBadRequest, 3},
		{"TXN with no ops", map[string]any{"t": 3, "v": 5, "o": []any{}}, fs.KindBadRequest, 3},
		{"TXN op of wrong kind", map[string]any{"t": 3, "v": 5, "o": []any{map[string]any{"k": 9, "p": "/a", "r": 0}}}, fs.KindBadRequest, 3},
		{"TXN op without rev", map[string]any{"t": 3, "v": 5, "o": []any{map[string]any{"k": 1, "p": "/a"}}}, fs.KindBadRequest, 3},
		{"TXN op not a map", map[string]any{"t": 3, "v": 5, "o": []any{"set /a"}}, fs.KindBadRequest, 3},
		{"TXN ops not an array", map[string]any{"t": 3, "v": 5, "o": map[string]any{}}, fs.KindBadRequest, 3},
		{"LEASE_GRANT without ttl", map[string]any{"t": 3, "v": 14}, fs.KindBadRequest, 3},
		{"LEASE_GRANT with ttl 0", map[string]any{"t": 3, "v": 14, "u": 0}, fs.KindBadRequest, 3},
		{"CANCEL without other", map[string]any{"t": 3, "v": 12}, fs.KindBadRequest, 3},
		{"WAIT without rev", map[string]any{"t": 3, "v": 10, "p": "/**"}, fs.KindBadRequest, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := msgpack.Marshal(c.msg)
			if err != nil {
				t.Fatal(err)
			}
			var req Request
			err = DecodeRequest(b, &req)
			if got := fs.KindOf(err); err == nil || got != c.kind {
				t.Errorf("got error %v, want kind %v", err, c.kind)
			}
			if req.Tag != c.wantTag {
				t.Errorf("got tag %d, want %d", req.Tag, c.wantTag)
			}
		})
	}
}

func TestMalformedFramesAreRejectedNotPanicked(t *testing.T) {
	deep := strings.Repeat("\x91", 100000) + "\x01"
	cases := map[string]string{
		"not a map":                  "\x01",
		"truncated map":              "\x82\xa1t\x01",
		"trailing bytes":             "\x82\xa1t\x01\xa1v\x01\x00",
		"string longer than frame":   "\x81\xa1p\xdb\xff\xff\xff\xff",
		"map count larger than data": "\xdf\xff\xff\xff\xff\xa1t\x01",
		"ops count larger than data": "\x83\xa1t\x01\xa1v\x05\xa1o\xdd\x7f\xff\xff\xff",
		"deep nesting in unknown":    "\x83\xa1t\x01\xa1v\x0d\xa1q" + deep,
		"invalid code":               "\x82\xa1t\x01\xa1v\xc1",
		"ext as tag":                 "\x82\xa1t\xd4\x01\x01\xa1v\x01",
		"truncated uint64":           "\x81\xa1t\xcf\x00\x00",
		"huge ext length":            "\x82\xa1q\xc9\xff\xff\xff\xff\x00",
		"empty":                      "",
	}
	for name, frame := range cases {
		t.Run(name, func(t *testing.T) {
			var req Request
			if err := DecodeRequest([]byte(frame), &req); !errors.Is(err, fs.ErrBadRequest) {
				t.Errorf("DecodeRequest: got %v, want BAD_REQUEST", err)
			}
			var resp Response
			if err := DecodeResponse([]byte(frame), &resp); !errors.Is(err, fs.ErrBadRequest) {
				t.Errorf("DecodeResponse: got %v, want BAD_REQUEST", err)
			}
			var h Hello
			if err := DecodeHello([]byte(frame), &h); !errors.Is(err, fs.ErrBadRequest) {
				t.Errorf("DecodeHello: got %v, want BAD_REQUEST", err)
			}
			if name == "ext as tag" {
				return // well-formed msgpack: the generic decoder follows the library's conversions
			}
			var v struct{ T int }
			if err := DecodeMsg([]byte(frame), &v); !errors.Is(err, fs.ErrBadRequest) {
				t.Errorf("DecodeMsg: got %v, want BAD_REQUEST", err)
			}
		})
	}
}

func TestResponseWithDetailButNoKindIsRejected(t *testing.T) {
	b, _ := msgpack.Marshal(map[string]any{"t": 1, "x": "oops"})
	var resp Response
	if err := DecodeResponse(b, &resp); !errors.Is(err, fs.ErrBadRequest) {
		t.Errorf("got %v, want BAD_REQUEST", err)
	}
}

func TestOversizeRequestIsTooBigAndLeavesBufferAlone(t *testing.T) {
	dst := []byte("keep")
	got, err := AppendRequest(dst, &Request{Tag: 1, Verb: VerbSet, Path: "/a", Body: make([]byte, 2000)}, 1000)
	if !errors.Is(err, fs.ErrTooBig) {
		t.Errorf("got %v, want TOO_BIG", err)
	}
	if string(got) != "keep" {
		t.Errorf("got buffer %q, want %q", got, "keep")
	}
}

func TestGenericMessagesRoundTrip(t *testing.T) {
	type accept struct {
		Slot   int64  `msgpack:"s"`
		Ballot uint64 `msgpack:"b"`
		Value  []byte `msgpack:"v"`
	}
	want := accept{Slot: 9, Ballot: 1<<40 + 3, Value: []byte("cmd")}
	frame, err := AppendMsg(nil, &want, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got accept
	if err := DecodeMsg(payload(t, frame), &got); err != nil {
		t.Fatalf("DecodeMsg: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestGenericMessageOfWrongShapeIsBadRequest(t *testing.T) {
	var v struct{ N int }
	if err := DecodeMsg([]byte("\x81\xa1N\xa3abc"), &v); !errors.Is(err, fs.ErrBadRequest) {
		t.Errorf("got %v, want BAD_REQUEST", err)
	}
}

func TestVerbNamesAndClasses(t *testing.T) {
	if got := VerbLeaseRevoke.String(); got != "LEASE_REVOKE" {
		t.Errorf("got %q, want LEASE_REVOKE", got)
	}
	if got := Verb(99).String(); got != "VERB_99" {
		t.Errorf("got %q, want VERB_99", got)
	}
	if VerbSet.IsRead() || !VerbGet.IsRead() || !VerbWatch.Streams() || VerbWait.Streams() {
		t.Error("verb classes are wrong")
	}
}

// TestRandomBytesNeverPanicAnyDecoder feeds every decoder random bytes and
// random mutations of valid messages; each must return, with an error or
// without.
func TestRandomBytesNeverPanicAnyDecoder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	valid := [][]byte{encodeRequest(t, &everyRequest[5]), encodeResponse(t, &everyResponse[8])}
	for i := range 20000 {
		var b []byte
		if i%2 == 0 {
			b = make([]byte, rng.IntN(64))
			for j := range b {
				b[j] = byte(rng.UintN(256))
			}
		} else {
			b = append([]byte(nil), valid[i%4/2]...)
			for range 1 + rng.IntN(3) {
				b[rng.IntN(len(b))] = byte(rng.UintN(256))
			}
		}
		var req Request
		var resp Response
		var h Hello
		var hr HelloReply
		var v any
		DecodeRequest(b, &req)
		DecodeResponse(b, &resp)
		DecodeHello(b, &h)
		DecodeHelloReply(b, &hr)
		DecodeMsg(b, &v)
		ReadFrame(bytes.NewReader(b), nil, 1<<10)
	}
}
