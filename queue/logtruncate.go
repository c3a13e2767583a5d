package queue

import (
	"encoding/json"
	"fmt"
	"time"
)

// truncation enforces a try's log byte limit (Limits.LogPerTry) in a
// LogWriter: lines are let through until the limit, then one marker line
// says the log was truncated, and the later lines are only counted; Close
// adds a line with the counts. The task itself is not affected.
type truncation struct {
	limit        int64 // ≤ 0: none
	written      int64
	truncated    bool
	droppedLines int64
	droppedBytes int64
}

// admit returns the line to write: line itself, the truncation marker in
// its place when line crosses the limit, or nil to drop it.
func (t *truncation) admit(line []byte) []byte {
	if t.limit <= 0 {
		return line
	}
	if !t.truncated && t.written+int64(len(line))+1 <= t.limit {
		t.written += int64(len(line)) + 1
		return line
	}
	t.droppedLines++
	t.droppedBytes += int64(len(line)) + 1
	if t.truncated {
		return nil
	}
	t.truncated = true
	return marker("warning", fmt.Sprintf("log truncated: this try's log reached its limit of %d bytes; later lines are dropped", t.limit), nil)
}

// summary is the closing line of a truncated log, or nil.
func (t *truncation) summary() []byte {
	if !t.truncated {
		return nil
	}
	return marker("warning", fmt.Sprintf("log truncated: %d lines (%d bytes) dropped past the limit of %d bytes",
		t.droppedLines, t.droppedBytes, t.limit),
		map[string]any{"dropped_lines": t.droppedLines, "dropped_bytes": t.droppedBytes, "limit_bytes": t.limit})
}

// marker is a log line of taskwire's own in the shape of the task's lines.
func marker(level, event string, extra map[string]any) []byte {
	rec := map[string]any{
		"timestamp": time.Now().UTC().Format(time.RFC3339Nano),
		"level":     level,
		"event":     event,
		"logger":    "taskwire.log_limit",
	}
	for k, v := range extra {
		rec[k] = v
	}
	b, _ := json.Marshal(rec)
	return b
}
