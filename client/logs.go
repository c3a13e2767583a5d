package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// maxLogLine bounds one log line of the stream.
const maxLogLine = 4 << 20

// LogLine is one line of a task instance's log, as the task's logger wrote
// it (Airflow's structlog shape) plus the try it belongs to.
type LogLine struct {
	Try       int
	Timestamp time.Time // zero when the line has none the client understands
	Level     string
	Event     string
	Logger    string
	// Raw is the whole line as the server sent it: a JSON object, which may
	// carry more fields than the ones above.
	Raw json.RawMessage
}

// Logs calls fn with each log line of the task instance id, in order: the
// lines of try number try, or of every try when try is 0. With follow it
// keeps streaming new lines until the task instance is finished and its
// lines are drained, or ctx is done (then it returns ctx's error). An error
// from fn stops the stream and is returned as is.
func (c *Client) Logs(ctx context.Context, id string, try int, follow bool, fn func(LogLine) error) error {
	return c.LogsWith(ctx, id, LogsOpts{Try: try, Follow: follow}, fn)
}

// LogsOpts are the options of [Client.LogsWith].
type LogsOpts struct {
	// Try is the try whose lines are read; 0 means every try.
	Try int
	// Follow keeps streaming new lines until the task instance is
	// finished and its lines are drained.
	Follow bool
	// Tail, when > 0, reads only the last Tail lines stored (not with
	// Follow).
	Tail int
}

// LogsWith is Logs with options. A read that is not followed has no overall
// deadline (a big log may take minutes): it fails only when no data came
// for the client's RequestTimeout.
func (c *Client) LogsWith(ctx context.Context, id string, opts LogsOpts, fn func(LogLine) error) error {
	err := c.logs(ctx, id, opts, fn)
	var fe fnError
	if errors.As(err, &fe) {
		return fe.err
	}
	if err != nil {
		return fmt.Errorf("logs of task instance %s: %w", id, err)
	}
	return nil
}

// fnError carries the callback's error through logs unwrapped.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }

func (c *Client) logs(ctx context.Context, id string, opts LogsOpts, fn func(LogLine) error) error {
	try, follow := opts.Try, opts.Follow
	p, err := pathID("task instance id", id)
	if err != nil {
		return err
	}
	if try < 0 {
		return fmt.Errorf("%w: try %d is negative", ErrBadRequest, try)
	}
	q := url.Values{}
	if try > 0 {
		q.Set("try", strconv.Itoa(try))
	}
	if opts.Tail < 0 {
		return fmt.Errorf("%w: tail %d is negative", ErrBadRequest, opts.Tail)
	}
	if opts.Tail > 0 {
		q.Set("tail", strconv.Itoa(opts.Tail))
	}
	var idle *idleTimer
	if follow {
		q.Set("follow", "true")
	} else {
		var cancel context.CancelFunc
		ctx, idle, cancel = c.withIdleTimeout(ctx)
		defer cancel()
	}
	resp, err := c.send(ctx, http.MethodGet, "/task-instances/"+p+"/logs", q, nil, "application/x-ndjson")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body io.Reader = resp.Body
	if idle != nil {
		body = idle.reader(resp.Body)
	}
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), maxLogLine)
	for sc.Scan() {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if err := fn(parseLogLine(b)); err != nil {
			return fnError{err}
		}
	}
	if err := sc.Err(); err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return fmt.Errorf("read stream: %w", err)
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return nil
}

// parseLogLine decodes one line of a log stream. It never fails: a line that
// is not a JSON object becomes a LogLine whose Event is the line's text.
func parseLogLine(b []byte) LogLine {
	raw := json.RawMessage(append([]byte(nil), b...))
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		ev, _ := json.Marshal(string(b))
		return LogLine{Event: string(b), Raw: json.RawMessage(`{"event":` + string(ev) + `}`)}
	}
	l := LogLine{Raw: raw}
	if v, ok := m["try"]; ok {
		var n float64
		if json.Unmarshal(v, &n) == nil {
			l.Try = int(n)
		}
	}
	l.Level = jsonText(m["level"])
	l.Event = jsonText(m["event"])
	l.Logger = jsonText(m["logger"])
	l.Timestamp = parseTimestamp(m["timestamp"])
	return l
}

// jsonText returns a JSON string's text, or any other value's JSON.
func jsonText(v json.RawMessage) string {
	if len(v) == 0 || string(v) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	return string(v)
}

var timestampLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999", // no zone: UTC
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
}

// parseTimestamp accepts an RFC 3339 string (and near variants) or a number
// of seconds since the Unix epoch.
func parseTimestamp(v json.RawMessage) time.Time {
	var s string
	if json.Unmarshal(v, &s) == nil {
		for _, layout := range timestampLayouts {
			if t, err := time.Parse(layout, s); err == nil {
				return t
			}
		}
		return time.Time{}
	}
	var secs float64
	if json.Unmarshal(v, &secs) == nil && secs > 0 && secs < math.MaxInt64/1e9 {
		whole, frac := math.Modf(secs)
		return time.Unix(int64(whole), int64(frac*1e9)).UTC()
	}
	return time.Time{}
}
