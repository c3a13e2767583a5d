package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Environment variable of a warm runtime (see the worker package's warm
// mode): the number of comm connections the runtime keeps open, each one
// task slot.
const EnvWarmTasks = "TASKWIRE_WARM_TASKS"

// LogStreamHeader is the first line of every log connection, one JSON
// object ended by "\n". It presents the runtime's secret (EnvCommSecret):
// the worker drops a connection whose first line does not, without reading
// further (golden vectors testdata/log_stream_*).
//
// A cold runtime (one try) sends only the secret, then the task's JSON log
// lines:
//
//	{"secret":"00112233…"}
//
// A warm process serves many tasks, so after it reads a task's
// StartupDetails on a comm connection it opens a connection of its own to
// the logs address for that task and names the try in this line; the
// task's JSON log lines follow, as in cold mode, and the runtime closes
// that connection before it sends the task's terminal message.
//
//	{"ti_id":"0195b3c2-7a1e-7c4d-9f1a-3b2c1d0e9f8a","try_number":2,"secret":"00112233…"}
//
// A runtime may instead open one log connection for all its tasks (the
// Python SDK does, so that thousands of concurrent tasks cost one file
// descriptor, not two, each): its header is {"mux":true,"secret":…} and
// every following line names its try, see MuxLogLine.
type LogStreamHeader struct {
	TIID      string `json:"ti_id,omitempty"`
	TryNumber int    `json:"try_number,omitempty"`
	// Mux marks a multiplexed log connection: TIID and TryNumber are then
	// empty, each line names its own try.
	Mux bool `json:"mux,omitempty"`
	// Secret is the runtime's EnvCommSecret.
	Secret string `json:"secret"`
}

// Cold reports whether the header is a cold runtime's (neither a try nor
// mux).
func (h LogStreamHeader) Cold() bool { return !h.Mux && h.TIID == "" }

// MaxLogStreamHeader bounds a log connection's header line.
const MaxLogStreamHeader = 1024

// MuxLogLine returns one line of a multiplexed log connection: the try's
// task instance id, a tab, its try number, a tab, then the task's JSON log
// line (no newline inside), then "\n". An empty line (nothing after the
// second tab) ends the try's lines: the runtime writes it once the try is
// over, before the try's terminal message on its comm connection, so the
// worker knows it has every line of the try.
//
//	0195b3c2-7a1e-7c4d-9f1a-3b2c1d0e9f8a\t2\t{"event":"hello","level":"info"}
//	0195b3c2-7a1e-7c4d-9f1a-3b2c1d0e9f8a\t2\t
func MuxLogLine(tiID string, try int, line []byte) []byte {
	b := make([]byte, 0, len(tiID)+len(line)+8)
	b = append(b, tiID...)
	b = append(b, '\t')
	b = strconv.AppendInt(b, int64(try), 10)
	b = append(b, '\t')
	b = append(b, line...)
	return append(b, '\n')
}

// ParseMuxLogLine splits one line of a multiplexed log connection (without
// its newline). An empty line is the end of the try's lines.
func ParseMuxLogLine(l []byte) (tiID string, try int, line []byte, err error) {
	i := bytes.IndexByte(l, '\t')
	if i <= 0 {
		return "", 0, nil, errors.New("mux log line: no ti_id and tab")
	}
	j := bytes.IndexByte(l[i+1:], '\t')
	if j < 0 {
		return "", 0, nil, errors.New("mux log line: no try_number and tab")
	}
	try, err = strconv.Atoi(string(l[i+1 : i+1+j]))
	if err != nil || try < 1 {
		return "", 0, nil, fmt.Errorf("mux log line: try_number %q", l[i+1:i+1+j])
	}
	return string(l[:i]), try, l[i+2+j:], nil
}

// MarshalLine returns the header as the line a runtime writes, "\n"
// included.
func (h LogStreamHeader) MarshalLine() []byte {
	b, _ := json.Marshal(h)
	return append(b, '\n')
}

// ParseLogStreamHeader decodes the first line of a log connection (without
// its newline). It does not check the secret (the worker does, in constant
// time) but refuses a header without one.
func ParseLogStreamHeader(line []byte) (LogStreamHeader, error) {
	var h LogStreamHeader
	if err := json.Unmarshal(line, &h); err != nil {
		return h, fmt.Errorf("log stream header: %w", err)
	}
	if h.Secret == "" {
		return h, errors.New("log stream header: no secret (an SDK older than the comm secret, or not a runtime)")
	}
	if h.Cold() {
		if h.TryNumber != 0 {
			return h, errors.New("log stream header: try_number without ti_id")
		}
		return h, nil
	}
	if h.Mux {
		if h.TIID != "" || h.TryNumber != 0 {
			return h, errors.New("log stream header: mux takes no ti_id or try_number")
		}
		return h, nil
	}
	if h.TIID == "" || h.TryNumber < 1 {
		return h, errors.New("log stream header: needs ti_id and try_number ≥ 1")
	}
	return h, nil
}
