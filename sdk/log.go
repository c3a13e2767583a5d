package sdk

import (
	"io"
	"log/slog"
	"os"
	"sync"
	"time"
)

// newLogHandler returns a handler writing JSON lines as the worker's logs
// socket expects them: {"timestamp", "level", "event", "logger", attrs...},
// with RFC 3339 UTC timestamps and the levels "debug", "info", "warning" and
// "error". An attribute of the caller named "timestamp", "level" or "event"
// is written with a trailing underscore ("event_"), so that it cannot hide
// the record's own field (JSON readers keep the last of duplicate keys).
func newLogHandler(w io.Writer, level slog.Leveler) slog.Handler {
	return slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.TimeKey:
				if a.Value.Kind() == slog.KindTime {
					return slog.String("timestamp", a.Value.Time().UTC().Format(time.RFC3339Nano))
				}
			case slog.LevelKey:
				// The record's level is a slog.Level; anything else is the
				// caller's.
				if l, ok := a.Value.Any().(slog.Level); ok {
					return slog.String("level", levelName(l))
				}
				a.Key += "_"
			case slog.MessageKey:
				return slog.Attr{Key: "event", Value: a.Value}
			case "timestamp", "event":
				a.Key += "_"
			}
			return a
		},
	})
}

func levelName(l slog.Level) string {
	switch {
	case l < slog.LevelInfo:
		return "debug"
	case l < slog.LevelWarn:
		return "info"
	case l < slog.LevelError:
		return "warning"
	}
	return "error"
}

// logWriter writes log lines to the logs socket, and to stderr (which the
// worker also captures) once the socket fails.
type logWriter struct {
	mu  sync.Mutex
	w   io.Writer
	err error
}

func (l *logWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w != nil && l.err == nil {
		_, err := l.w.Write(p)
		if err == nil {
			return len(p), nil
		}
		l.err = err
	}
	return os.Stderr.Write(p)
}
