// Package runtimetest plays the worker for a task runtime process in tests:
// it listens on real sockets, sends the StartupDetails, answers the
// runtime's requests with the protocol package, collects its log lines and
// terminal message, and offers checks on what it saw. The Go, Python and
// Java runtimes are all tested against it.
package runtimetest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskwire/taskwire/protocol"
)

// TimeoutDefault bounds one run of the runtime when Config.Timeout is 0.
const TimeoutDefault = 30 * time.Second

// Store is what the stand-in worker answers requests from.
type Store struct {
	Variables   map[string]string
	Connections map[string]protocol.ConnectionResult
	XComs       map[string]any // keyed task_id/key
}

// Config describes one run of a runtime against the stand-in worker.
type Config struct {
	// Codec is the codec of the comm socket.
	Codec protocol.Codec
	// Startup is sent as the first frame.
	Startup protocol.StartupDetails
	// Store answers GetVariable, GetConnection and GetXCom. It is not
	// modified: pushed XComs go to a copy, returned as Result.XComs.
	Store Store
	// Unix listens on Unix sockets in a temporary directory instead of
	// loopback TCP.
	Unix bool
	// Timeout bounds the run; TimeoutDefault when 0.
	Timeout time.Duration
	// Run starts the runtime, telling it the worker's comm and logs
	// addresses and the secret (in its environment,
	// protocol.EnvCommSecret: see SecretEnv), and waits for it to exit. It
	// returns the combined output.
	Run func(ctx context.Context, comm, logs, secret string) (output string, err error)
}

// Result is what one run of the runtime told the stand-in worker.
type Result struct {
	Terminal protocol.Message   // the SucceedTask, TaskState, RetryTask or DeferTask
	Requests []protocol.Message // every request, in order
	Logs     string             // the log lines, each ending in a newline
	XComs    map[string]any     // Store.XComs with the pushed XComs, keyed task_id/key
	Output   string             // stdout and stderr of the process
	Err      error              // how the process exited
}

// Run listens for the runtime, runs it with cfg.Run and plays the worker
// until the runtime exits. Protocol errors on the worker's side (a request
// id out of sequence, a second terminal message, an unreadable frame) fail
// the test.
func Run(t *testing.T, cfg Config) Result {
	t.Helper()
	network, addr := "tcp", func(string) string { return "127.0.0.1:0" }
	if cfg.Unix {
		// Short: a Unix socket path is limited to about 100 bytes.
		dir, err := os.MkdirTemp("", "twrt")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		network, addr = "unix", func(name string) string { return filepath.Join(dir, name) }
	}
	comm, err := net.Listen(network, addr("comm.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer comm.Close()
	logs, err := net.Listen(network, addr("logs.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()

	secret, err := protocol.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	res := Result{XComs: maps.Clone(cfg.Store.XComs)}
	if res.XComs == nil {
		res.XComs = map[string]any{}
	}
	var wg sync.WaitGroup
	var logBuf strings.Builder
	wg.Add(2)
	go func() {
		defer wg.Done()
		c, err := logs.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		sc := bufio.NewScanner(c)
		sc.Buffer(nil, 1<<20)
		if !sc.Scan() {
			return
		}
		if h, err := protocol.ParseLogStreamHeader(sc.Bytes()); err != nil || !h.Cold() || !protocol.SecretEqual(h.Secret, secret) {
			t.Errorf("log connection header %q: want the cold header with the secret (%v)", sc.Text(), err)
			return
		}
		for sc.Scan() {
			logBuf.Write(sc.Bytes())
			logBuf.WriteByte('\n')
		}
	}()
	go func() {
		defer wg.Done()
		c, err := comm.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		if err := protocol.ReadAuth(c, secret); err != nil {
			t.Errorf("comm connection: auth frame: %v", err)
			return
		}
		serve(t, protocol.NewConn(c, cfg.Codec, 0), cfg.Startup, cfg.Store, &res)
	}()

	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = TimeoutDefault
	}
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	res.Output, res.Err = cfg.Run(ctx, comm.Addr().String(), logs.Addr().String(), secret)
	comm.Close()
	logs.Close()
	wg.Wait()
	res.Logs = logBuf.String()
	return res
}

// SecretEnv is the environment entry that gives a runtime its secret.
func SecretEnv(secret string) string { return protocol.EnvCommSecret + "=" + secret }

// serve sends sd on conn and answers requests from s until the runtime
// hangs up, recording them in res.
func serve(t *testing.T, conn *protocol.Conn, sd protocol.StartupDetails, s Store, res *Result) {
	if err := conn.WriteResponse(0, sd, nil); err != nil {
		t.Errorf("send StartupDetails: %v", err)
		return
	}
	for want := 1; ; want++ {
		req, err := conn.ReadRequest()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Errorf("read request: %v", err)
			}
			return
		}
		if req.ID != want {
			t.Errorf("request id %d, want %d", req.ID, want)
		}
		res.Requests = append(res.Requests, req.Msg)
		var msg protocol.Message = protocol.OKResponse{}
		var errResp *protocol.ErrorResponse
		switch m := req.Msg.(type) {
		case protocol.SucceedTask, protocol.TaskState, protocol.RetryTask, protocol.DeferTask:
			if res.Terminal != nil {
				t.Errorf("second terminal message %#v after %#v", m, res.Terminal)
			}
			res.Terminal = m
		case protocol.GetVariable:
			if v, ok := s.Variables[m.Key]; ok {
				msg = protocol.VariableResult{Key: m.Key, Value: v}
			} else {
				msg, errResp = nil, &protocol.ErrorResponse{Error: "not_found", Detail: map[string]any{"message": "variable " + m.Key + " not found"}}
			}
		case protocol.GetConnection:
			if v, ok := s.Connections[m.ConnID]; ok {
				msg = v
			} else {
				msg, errResp = nil, &protocol.ErrorResponse{Error: "not_found", Detail: map[string]any{"message": "connection " + m.ConnID + " not found"}}
			}
		case protocol.SetXCom:
			res.XComs[m.TaskID+"/"+m.Key] = m.Value
		case protocol.GetXCom:
			msg = protocol.XComResult{Key: m.Key, Value: res.XComs[m.TaskID+"/"+m.Key]}
		}
		if err := conn.WriteResponse(req.ID, msg, errResp); err != nil {
			t.Errorf("answer %d: %v", req.ID, err)
			return
		}
	}
}

// Records decodes the log lines, failing the test for a line that is not a
// JSON object.
func (r Result) Records(t testing.TB) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for line := range strings.Lines(r.Logs) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("log line %q is not JSON: %v", line, err)
			continue
		}
		recs = append(recs, rec)
	}
	return recs
}

// Check is a check on a Result.
type Check func(*testing.T, Result)

// All runs every check.
func All(checks ...Check) Check {
	return func(t *testing.T, r Result) {
		t.Helper()
		for _, c := range checks {
			c(t, r)
		}
	}
}

// Succeeded checks that the task ended with SucceedTask.
func Succeeded(t *testing.T, r Result) {
	t.Helper()
	if _, ok := r.Terminal.(protocol.SucceedTask); !ok {
		t.Errorf("terminal %#v, want SucceedTask\nlogs:\n%s", r.Terminal, r.Logs)
	}
}

// Retried checks that the task ended with RetryTask, its reason holding
// reason.
func Retried(reason string) Check {
	return func(t *testing.T, r Result) {
		t.Helper()
		if m, ok := r.Terminal.(protocol.RetryTask); !ok || !strings.Contains(m.Reason, reason) {
			t.Errorf("terminal %#v, want RetryTask with %q", r.Terminal, reason)
		}
	}
}

// Failed checks that the task ended with TaskState failed, its reason
// holding reason.
func Failed(reason string) Check {
	return func(t *testing.T, r Result) {
		t.Helper()
		if m, ok := r.Terminal.(protocol.TaskState); !ok || m.State != "failed" || !strings.Contains(m.Reason, reason) {
			t.Errorf("terminal %#v, want TaskState failed with %q", r.Terminal, reason)
		}
	}
}

// Logged checks that the logs hold every part and that every log line is a
// JSON object with an RFC 3339 timestamp, a level of debug, info, warning
// or error, and an event.
func Logged(parts ...string) Check {
	return func(t *testing.T, r Result) {
		t.Helper()
		for _, p := range parts {
			if !strings.Contains(r.Logs, p) {
				t.Errorf("logs lack %q:\n%s", p, r.Logs)
			}
		}
		for _, line := range strings.Split(strings.TrimSpace(r.Logs), "\n") {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Errorf("log line is not JSON: %v: %s", err, line)
				continue
			}
			if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(rec["timestamp"])); err != nil {
				t.Errorf("log line timestamp: %v: %s", err, line)
			}
			switch rec["level"] {
			case "debug", "info", "warning", "error":
			default:
				t.Errorf("log line level %v: %s", rec["level"], line)
			}
			if rec["event"] == nil {
				t.Errorf("log line lacks event: %s", line)
			}
		}
	}
}
