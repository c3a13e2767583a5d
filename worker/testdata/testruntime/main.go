// Command testruntime is a minimal SDK runtime for the worker's tests. It
// speaks the task protocol with the protocol package; the task named in
// StartupDetails selects a behaviour.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/taskwire/taskwire/protocol"
	"github.com/taskwire/taskwire/sdk"
)

var (
	conn *protocol.Conn
	logs net.Conn
	next = 1
)

func logLine(event string, extra map[string]any) {
	rec := map[string]any{"level": "info", "event": event, "logger": "testruntime"}
	for k, v := range extra {
		rec[k] = v
	}
	b, _ := json.Marshal(rec)
	_, _ = logs.Write(append(b, '\n'))
}

func call(msg protocol.Message) protocol.Response {
	id := next
	next++
	if err := conn.WriteRequest(id, msg); err != nil {
		fail("write request: %v", err)
	}
	resp, err := conn.ReadResponse()
	if err != nil {
		fail("read response: %v", err)
	}
	if resp.ID != id {
		fail("response id %d, want %d", resp.ID, id)
	}
	return resp
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(70)
}

func main() {
	comm := flag.String("comm", "", "comm address")
	logsAddr := flag.String("logs", "", "logs address")
	flag.Parse()
	codec, err := protocol.ParseCodec(os.Getenv("TASKWIRE_CODEC"))
	if err != nil {
		fail("codec: %v", err)
	}
	secret := os.Getenv(protocol.EnvCommSecret)
	if os.Getenv("TESTRUNTIME_NO_SECRET") != "" {
		secret = "" // an SDK older than the secret: it sends none
	}
	if logs, err = net.Dial(sdk.Network(*logsAddr), *logsAddr); err != nil {
		fail("dial logs: %v", err)
	}
	if secret != "" {
		if _, err := logs.Write(protocol.LogStreamHeader{Secret: secret}.MarshalLine()); err != nil {
			fail("write log header: %v", err)
		}
	}
	c, err := net.Dial(sdk.Network(*comm), *comm)
	if err != nil {
		fail("dial comm: %v", err)
	}
	if secret != "" {
		if _, err := c.Write(protocol.AuthFrame(secret)); err != nil {
			fail("write auth frame: %v", err)
		}
	}
	conn = protocol.NewConn(c, codec, protocol.MaxFrameSizeDefault)
	first, err := conn.ReadResponse()
	if err != nil {
		fail("read startup: %v", err)
	}
	sd, ok := first.Msg.(protocol.StartupDetails)
	if !ok || first.ID != 0 {
		fail("first frame %d %T, want StartupDetails with id 0", first.ID, first.Msg)
	}
	b, _ := json.Marshal(sd)
	logLine("startup", map[string]any{"startup": string(b)})

	switch sd.Context.Entrypoint {
	case "noop":
		fmt.Println("hello from stdout")
		call(protocol.SucceedTask{Type: protocol.TypeSucceedTask})
	case "api":
		r := call(protocol.GetVariable{Type: protocol.TypeGetVariable, Key: "v1"})
		logLine("variable", map[string]any{"value": r.Msg.(protocol.VariableResult).Value})
		r = call(protocol.GetVariable{Type: protocol.TypeGetVariable, Key: "missing"})
		logLine("missing variable", map[string]any{"error": r.Err.Error})
		call(protocol.PutVariable{Type: protocol.TypePutVariable, Key: "v2", Value: "written"})
		call(protocol.SetXCom{Type: protocol.TypeSetXCom, Key: "k", Value: "xv"})
		r = call(protocol.GetXCom{Type: protocol.TypeGetXCom, Key: "k"})
		logLine("xcom", map[string]any{"value": r.Msg.(protocol.XComResult).Value})
		r = call(protocol.GetXCom{Type: protocol.TypeGetXCom, Key: "nope"})
		logLine("xcom missing", map[string]any{"is_nil": r.Msg.(protocol.XComResult).Value == nil})
		r = call(protocol.GetConnection{Type: protocol.TypeGetConnection, ConnID: "db"})
		logLine("connection password "+r.Msg.(protocol.ConnectionResult).Password, nil)
		call(protocol.MaskSecret{Type: protocol.TypeMaskSecret, Value: "topsecret"})
		logLine("the secret is topsecret", nil)
		fmt.Println("stdout says topsecret")
		call(protocol.SucceedTask{Type: protocol.TypeSucceedTask})
	case "fail":
		call(protocol.TaskState{Type: protocol.TypeTaskState, State: "failed", Reason: "boom"})
	case "retry":
		call(protocol.RetryTask{Type: protocol.TypeRetryTask, Reason: "try again"})
	case "defer":
		call(protocol.DeferTask{Type: protocol.TypeDeferTask, Classpath: "taskwire.triggers.TimeDelta",
			TriggerKwargs: map[string]any{"delta": "1s"}, TriggerTimeout: "1m", NextMethod: "resume",
			NextKwargs: map[string]any{"n": "1"}})
	case "exit3":
		fmt.Fprintln(os.Stderr, "failing on purpose")
		os.Exit(3)
	case "garbage":
		_, _ = c.Write([]byte{0, 0, 0, 5, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1})
		time.Sleep(time.Hour)
	case "linger":
		call(protocol.SucceedTask{Type: protocol.TypeSucceedTask})
		time.Sleep(time.Hour)
	case "sleep":
		time.Sleep(time.Hour)
	case "escape":
		// A grandchild in a session of its own keeps the comm and logs
		// sockets open; the runtime exits without a final message.
		cf, err := c.(interface{ File() (*os.File, error) }).File()
		if err != nil {
			fail("comm file: %v", err)
		}
		lf, err := logs.(interface{ File() (*os.File, error) }).File()
		if err != nil {
			fail("logs file: %v", err)
		}
		gc := exec.Command("sleep", "60")
		gc.ExtraFiles = []*os.File{cf, lf}
		gc.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := gc.Start(); err != nil {
			fail("start grandchild: %v", err)
		}
		if err := os.WriteFile(sd.Context.Params["pid_file"].(string), []byte(strconv.Itoa(gc.Process.Pid)+"\n"), 0o644); err != nil {
			fail("pid file: %v", err)
		}
		fmt.Fprintln(os.Stderr, "leaving a grandchild behind")
		os.Exit(3)
	default:
		fail("unknown task %q", sd.Context.Entrypoint)
	}
	_ = logs.Close()
	_ = c.Close()
}
