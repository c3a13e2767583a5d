package worker

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/queue"
)

// maskReplacement replaces every masked secret in log lines.
const maskReplacement = "***"

// taskLog ships a try's log lines to the LOGS stream as JSON objects
// {"timestamp", "level", "event", "logger"}, masking the secrets the task
// named with MaskSecret, the passwords and sensitive extra fields of the
// connections it read, and the values of the variables with sensitive
// names it read, in every later line. Safe for concurrent use.
type taskLog struct {
	log *slog.Logger

	mu       sync.Mutex
	w        *queue.LogWriter
	masks    []string
	warned   bool
	replacer *strings.Replacer
}

func newTaskLog(c *queue.Client, tiID string, try int, log *slog.Logger) *taskLog {
	return &taskLog{w: queue.NewLogWriter(c, tiID, try), log: log}
}

// addMask masks s in every later line.
func (l *taskLog) addMask(s string) {
	if s == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.masks {
		if m == s {
			return
		}
	}
	l.masks = append(l.masks, s)
	// Longest first, so a secret containing another is masked whole.
	pairs := make([]string, 0, 2*len(l.masks))
	sorted := append([]string(nil), l.masks...)
	for i := 1; i < len(sorted); i++ {
		for k := i; k > 0 && len(sorted[k]) > len(sorted[k-1]); k-- {
			sorted[k], sorted[k-1] = sorted[k-1], sorted[k]
		}
	}
	for _, m := range sorted {
		pairs = append(pairs, m, maskReplacement)
	}
	l.replacer = strings.NewReplacer(pairs...)
}

// addNamedMask masks v, or the strings inside it, when name (or, inside a
// map, a key) names a secret, as Airflow's masker does with a connection's
// extra and with variables.
func (l *taskLog) addNamedMask(name string, v any) {
	switch x := v.(type) {
	case string:
		if activity.SensitiveName(name) {
			l.addMask(x)
		}
	case map[string]any:
		for k, e := range x {
			if activity.SensitiveName(name) {
				k = name
			}
			l.addNamedMask(k, e)
		}
	case []any:
		for _, e := range x {
			l.addNamedMask(name, e)
		}
	}
}

// maskString masks the secrets known so far in s.
func (l *taskLog) maskString(s string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.replacer == nil {
		return s
	}
	return l.replacer.Replace(s)
}

// mask masks every string in v; l.mu is held.
func (l *taskLog) mask(v any) any {
	if l.replacer == nil {
		return v
	}
	switch x := v.(type) {
	case string:
		return l.replacer.Replace(x)
	case map[string]any:
		for k, e := range x {
			x[k] = l.mask(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = l.mask(e)
		}
		return x
	}
	return v
}

func (l *taskLog) emit(rec map[string]any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, v := range rec {
		if k != "timestamp" && k != "level" && k != "logger" {
			rec[k] = l.mask(v)
		}
	}
	b, err := json.Marshal(rec)
	if err != nil {
		l.warn(err)
		return
	}
	l.write(b)
}

// write ships one encoded line; l.mu is held.
func (l *taskLog) write(b []byte) {
	if err := l.w.Write(b); err != nil {
		l.warn(err)
	}
}

// warn logs the first failure to ship a line; l.mu is held.
func (l *taskLog) warn(err error) {
	if !l.warned {
		l.warned = true
		l.log.Warn("ship task log line", "err", err)
	}
}

func now() string { return time.Now().UTC().Format(time.RFC3339Nano) }

// worker writes a line of the worker's own about the try.
func (l *taskLog) worker(level, event string) {
	l.emitLine(level, event, "worker")
}

// output writes a line the process printed on stream (stdout or stderr).
func (l *taskLog) output(stream, line string) {
	level := "info"
	if stream == "stderr" {
		level = "warning"
	}
	l.emitLine(level, line, stream)
}

// emitLine is emit of {"timestamp", "level", "event", "logger"} (event
// masked), the same bytes json.Marshal writes for that map (its keys
// sorted), without the map and the reflection.
func (l *taskLog) emitLine(level, event, logger string) {
	ts := now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.replacer != nil {
		event = l.replacer.Replace(event)
	}
	l.write(encodeLine(level, event, logger, ts))
}

// encodeLine is json.Marshal of the map {"timestamp": ts, "level": level,
// "event": event, "logger": logger}.
func encodeLine(level, event, logger, ts string) []byte {
	b := make([]byte, 0, len(event)+len(ts)+len(level)+len(logger)+50)
	b = append(b, `{"event":`...)
	b = appendJSONString(b, event)
	b = append(b, `,"level":`...)
	b = appendJSONString(b, level)
	b = append(b, `,"logger":`...)
	b = appendJSONString(b, logger)
	b = append(b, `,"timestamp":`...)
	b = appendJSONString(b, ts)
	return append(b, '}')
}

// appendJSONString appends s as encoding/json writes a string: plain
// printable ASCII as is, anything else (escapes, HTML characters, other
// bytes) by json.Marshal itself.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// task writes a line from an SDK runtime's logs channel: a JSON object is
// kept with its fields (defaults filled in), anything else becomes an event.
func (l *taskLog) task(line []byte) {
	var rec map[string]any
	if err := json.Unmarshal(line, &rec); err != nil || rec == nil {
		rec = map[string]any{"event": string(line)}
	}
	if _, ok := rec["timestamp"].(string); !ok {
		rec["timestamp"] = now()
	}
	if _, ok := rec["level"].(string); !ok {
		rec["level"] = "info"
	}
	if _, ok := rec["event"]; !ok {
		for _, k := range []string{"msg", "message"} {
			if v, ok := rec[k]; ok {
				rec["event"] = v
				delete(rec, k)
				break
			}
		}
	}
	if _, ok := rec["logger"].(string); !ok {
		rec["logger"] = "task"
	}
	l.emit(rec)
}

// flush publishes the lines buffered so far without waiting for their
// acknowledgement (close waits for it).
func (l *taskLog) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.w.Flush()
}

// close flushes the lines; call it before reporting the final state.
func (l *taskLog) close(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Close(ctx)
}
