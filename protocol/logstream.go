package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Environment variable of a warm runtime (see the worker package's warm
// mode): the number of comm connections the runtime keeps open, each one
// task slot.
const EnvWarmTasks = "TASKWIRE_WARM_TASKS"

// LogStreamHeader is the first line of a task's log stream in a warm
// runtime. A warm process serves many tasks, so after it reads a task's
// StartupDetails on a comm connection it opens a connection of its own to
// the logs address for that task and names the try in this line, one JSON
// object ended by "\n"; the task's JSON log lines follow, as in cold mode,
// and the runtime closes that connection before it sends the task's
// terminal message.
//
//	{"ti_id":"0195b3c2-7a1e-7c4d-9f1a-3b2c1d0e9f8a","try_number":2}
type LogStreamHeader struct {
	TIID      string `json:"ti_id"`
	TryNumber int    `json:"try_number"`
}

// MarshalLine returns the header as the line a runtime writes, "\n"
// included.
func (h LogStreamHeader) MarshalLine() []byte {
	b, _ := json.Marshal(h)
	return append(b, '\n')
}

// ParseLogStreamHeader decodes the first line of a warm log stream (without
// its newline).
func ParseLogStreamHeader(line []byte) (LogStreamHeader, error) {
	var h LogStreamHeader
	if err := json.Unmarshal(line, &h); err != nil {
		return h, fmt.Errorf("log stream header: %w", err)
	}
	if h.TIID == "" || h.TryNumber < 1 {
		return h, errors.New("log stream header: needs ti_id and try_number ≥ 1")
	}
	return h, nil
}
