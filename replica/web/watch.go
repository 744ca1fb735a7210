package web

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	dfs "github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/wire"
)

// eventJSON is one change, the data of a watch stream's message.
type eventJSON struct {
	Rev      int64   `json:"rev"`
	Path     string  `json:"path"`
	Kind     string  `json:"kind"` // set, del or mkdir
	Time     string  `json:"time,omitempty"`
	TimeNS   int64   `json:"time_ns"`
	Lease    int64   `json:"lease,omitempty"`
	Body     *string `json:"body,omitempty"` // set only
	Encoding string  `json:"encoding,omitempty"`
}

// progressJSON is the data of a progress event: every change up to Rev
// has been sent.
type progressJSON struct {
	Rev int64 `json:"rev"`
}

// sse writes server-sent events with a deadline on each write, so that a
// client that stops reading cannot hold the stream forever.
type sse struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	buf bytes.Buffer
}

// event adds one event to the buffer: its type ("" for the default
// "message"), its id (< 0: none) and its data.
func (s *sse) event(typ string, id int64, data any) {
	if typ != "" {
		s.buf.WriteString("event: " + typ + "\n")
	}
	if id >= 0 {
		s.buf.WriteString("id: " + strconv.FormatInt(id, 10) + "\n")
	}
	b, _ := json.Marshal(data)
	s.buf.WriteString("data: ")
	s.buf.Write(b)
	s.buf.WriteString("\n\n")
}

// flush sends the buffer.
func (s *sse) flush() error {
	if s.buf.Len() == 0 {
		return nil
	}
	s.rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	_, err := s.w.Write(s.buf.Bytes())
	s.buf.Reset()
	if err == nil {
		err = s.rc.Flush()
	}
	s.rc.SetWriteDeadline(time.Time{})
	return err
}

// watch streams the events matching glob as server-sent events: each
// change is a default ("message") event whose data is an eventJSON; the
// last event of each revision carries id: REV, so that a client resuming
// with Last-Event-ID (EventSource does) misses nothing and repeats
// nothing. "progress" events (id too) say that every change up to their
// rev was sent; the first one comes as soon as the watch is registered.
// A "failed" event ends a stream the server stops (TOO_LATE when a slow
// client falls out of the history window, UNAVAILABLE at shutdown).
func (h *Handler) watch(w http.ResponseWriter, req *http.Request, glob string) {
	r := h.r
	fail := func(err error) {
		r.ObserveRequest("http", wire.VerbWatch.String(), err)
		writeError(w, 0, err)
	}
	g, err := dfs.CompileGlob(glob)
	if err != nil {
		fail(err)
		return
	}
	from, err := readRev(req.URL.Query().Get("rev"))
	if err != nil {
		fail(err)
		return
	}
	if id := req.Header.Get("Last-Event-ID"); id != "" {
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil || n < 0 {
			fail(&dfs.Error{Kind: dfs.KindBadRequest, Detail: "Last-Event-ID " + strconv.Quote(id) + ": want a revision"})
			return
		}
		from = n + 1
	}
	if from <= 0 {
		from = r.Tree().Rev() + 1
	}
	if from <= r.Tree().Rev() {
		if _, err := r.Tree().Events(from, g); err != nil {
			fail(err)
			return
		}
	}
	select {
	case <-h.closing:
		fail(&dfs.Error{Kind: dfs.KindUnavailable, Detail: "the server is shutting down"})
		return
	default:
	}
	defer r.TrackWatch("http")()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s := &sse{w: w, rc: http.NewResponseController(w)}
	s.buf.WriteString("retry: 1000\n\n")
	s.event("progress", from-1, progressJSON{Rev: from - 1})
	if err := s.flush(); err != nil {
		return
	}
	var final error
	defer func() { r.ObserveRequest("http", wire.VerbWatch.String(), final) }()
	beat := time.NewTicker(h.opts.Heartbeat)
	defer beat.Stop()
	sent := from - 1           // every change up to sent has been sent
	lastProgress := time.Now() // when the last progress event went out
	for {
		cur, changed := r.Changed()
		if cur >= from {
			evs, err := r.Tree().Events(from, g)
			if err != nil {
				final = err
				s.event("failed", -1, errJSON(err))
				s.flush()
				return
			}
			for i, ev := range evs {
				id := int64(-1)
				if i == len(evs)-1 || evs[i+1].Rev != ev.Rev {
					id = ev.Rev
				}
				e := eventJSON{Rev: ev.Rev, Path: ev.Path, Kind: ev.Kind.String(), Time: fmtTime(ev.Time), TimeNS: ev.Time, Lease: ev.Lease}
				if ev.Kind == dfs.EventSet {
					e.Body, e.Encoding = encodeBody(ev.Body)
				}
				s.event("", id, e)
				if s.buf.Len() > 256<<10 {
					if err := s.flush(); err != nil {
						return
					}
				}
			}
			from = cur + 1
			if len(evs) > 0 {
				sent = cur
				lastProgress = time.Now()
			}
			// Say how far the stream has got now and then, so that a
			// narrow watch's resume point keeps up with the store.
			if sent < cur && time.Since(lastProgress) >= time.Second {
				s.event("progress", cur, progressJSON{Rev: cur})
				sent, lastProgress = cur, time.Now()
			}
			if err := s.flush(); err != nil {
				return
			}
		}
		select {
		case <-changed:
		case <-beat.C:
			s.event("progress", from-1, progressJSON{Rev: from - 1})
			sent, lastProgress = from-1, time.Now()
			if err := s.flush(); err != nil {
				return
			}
		case <-req.Context().Done():
			return
		case <-h.closing:
			final = &dfs.Error{Kind: dfs.KindUnavailable, Detail: "the server is shutting down; resume the watch"}
			s.event("failed", -1, errJSON(final))
			s.flush()
			return
		case <-r.Done():
			final = &dfs.Error{Kind: dfs.KindUnavailable, Detail: "the replica stopped; resume the watch elsewhere"}
			s.event("failed", -1, errJSON(final))
			s.flush()
			return
		}
	}
}

func errJSON(err error) errorJSON {
	fe := asError(err)
	return errorJSON{Error: fe.Error(), Kind: fe.Kind.String(), Code: int(fe.Kind), Path: fe.Path, Detail: fe.Detail}
}
