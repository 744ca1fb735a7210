package gossip

import (
	"context"
	"log"
	"log/slog"
	"strings"
)

// stdLogger returns a *log.Logger (what memberlist takes) whose lines go to
// l: memberlist's "[LEVEL] memberlist: message" becomes message at the
// matching slog level.
func stdLogger(l *slog.Logger) *log.Logger {
	return log.New(logWriter{l.With("lib", "memberlist")}, "", 0)
}

type logWriter struct{ l *slog.Logger }

// Write takes one line: log.Logger makes one Write per message.
func (w logWriter) Write(p []byte) (int, error) {
	level, msg := parseLogLine(string(p))
	if w.l.Enabled(context.Background(), level) {
		w.l.Log(context.Background(), level, msg)
	}
	return len(p), nil
}

func parseLogLine(s string) (slog.Level, string) {
	s = strings.TrimRight(s, "\r\n")
	level := slog.LevelInfo
	if rest, ok := strings.CutPrefix(s, "["); ok {
		if tag, msg, ok := strings.Cut(rest, "]"); ok {
			known := true
			switch strings.ToUpper(tag) {
			case "TRACE", "DEBUG":
				level = slog.LevelDebug
			case "INFO":
				level = slog.LevelInfo
			case "WARN", "WARNING":
				level = slog.LevelWarn
			case "ERR", "ERROR":
				level = slog.LevelError
			default:
				known = false
			}
			if known {
				s = strings.TrimLeft(msg, " ")
			}
		}
	}
	s = strings.TrimPrefix(s, "memberlist: ")
	return level, s
}
