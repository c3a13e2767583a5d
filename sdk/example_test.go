package sdk_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/taskwire/taskwire/protocol"
	"github.com/taskwire/taskwire/sdk"
)

// Example runs a task against a stand-in for the worker: it sends
// StartupDetails, answers GetVariable, and prints what the task reports.
func Example() {
	r := sdk.New()
	r.Register("greet", func(ctx context.Context, t *sdk.Task) error {
		greeting, err := t.Variable(ctx, "greeting")
		if err != nil {
			return err // RetryTask: the executor retries while tries remain
		}
		t.Logger().Info("read the greeting", "greeting", greeting)
		return t.XComPush(ctx, "greeting", greeting+", "+t.TI().DagID)
	})

	runOnce(r, protocol.StartupDetails{
		TI:      protocol.TaskInstance{ID: "ti-1", DagID: "etl", TaskID: "greet", RunID: "r1", MapIndex: -1, TryNumber: 1},
		Context: protocol.RunContext{Entrypoint: "greet"},
	})
	// Output:
	// 2 SetXCom greeting=hello, etl
	// 3 SucceedTask
}

// ExampleRuntime_RegisterMethod shows a task that defers until a file
// exists and resumes in a method of its own. The stand-in worker runs it
// twice, as the executor would: first from the start, then, once the
// trigger fired, at the method it named, with the trigger's event.
func ExampleRuntime_RegisterMethod() {
	r := sdk.New()
	r.Register("wait_for_file", func(ctx context.Context, t *sdk.Task) error {
		// Frees the worker slot until the trigger fires, at most an hour.
		return t.Defer(ctx, "file", map[string]any{"path": "/data/ready"},
			"resume", map[string]any{"deferred_at": t.StartDate()}, time.Hour)
	})
	r.RegisterMethod("wait_for_file", "resume", func(ctx context.Context, t *sdk.Task) error {
		t.Logger().Info("the file is there", "deferred_at", t.NextKwargs()["deferred_at"], "event", t.Event())
		return t.XComPush(ctx, "event", t.Event())
	})

	ti := protocol.TaskInstance{ID: "ti-1", DagID: "etl", TaskID: "wait_for_file", RunID: "r1", MapIndex: -1, TryNumber: 1}
	rc := protocol.RunContext{Entrypoint: "wait_for_file"}
	fmt.Println("first run:")
	runOnce(r, protocol.StartupDetails{TI: ti, Context: rc, StartDate: "2026-11-22T08:00:00Z"})
	fmt.Println("resumed:")
	runOnce(r, protocol.StartupDetails{TI: ti, Context: rc, StartDate: "2026-11-22T08:05:00Z",
		NextMethod: "resume",
		NextKwargs: map[string]any{"deferred_at": "2026-11-22T08:00:00Z", "event": map[string]any{"path": "/data/ready"}}})
	// Output:
	// first run:
	// 1 DeferTask file path=/data/ready, then resume map[deferred_at:2026-11-22T08:00:00Z], timeout 1h0m0s
	// resumed:
	// 1 SetXCom event=map[path:/data/ready]
	// 2 SucceedTask
}

// runOnce runs r once against a stand-in worker that sends startup,
// answers every request (GetVariable with "hello"), and prints what the
// task sends.
func runOnce(r *sdk.Runtime, startup protocol.StartupDetails) {
	r.Secret = "the-secret-the-worker-gives-in-TASKWIRE_COMM_SECRET"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		// The runtime presents its secret (TASKWIRE_COMM_SECRET) first.
		if err := protocol.ReadAuth(c, r.Secret); err != nil {
			fmt.Println(err)
			return
		}
		conn := protocol.NewConn(c, protocol.CodecMsgpack, 0)
		_ = conn.WriteResponse(0, startup, nil)
		for {
			req, err := conn.ReadRequest()
			if err != nil {
				return
			}
			var resp protocol.Message = protocol.OKResponse{}
			switch m := req.Msg.(type) {
			case protocol.GetVariable:
				resp = protocol.VariableResult{Key: m.Key, Value: "hello"}
			case protocol.SetXCom:
				fmt.Printf("%d %s %s=%v\n", req.ID, m.MessageType(), m.Key, m.Value)
			case protocol.DeferTask:
				fmt.Printf("%d %s %s path=%v, then %s %v, timeout %s\n", req.ID, m.MessageType(), m.Classpath,
					m.TriggerKwargs["path"], m.NextMethod, m.NextKwargs, m.TriggerTimeout)
			default:
				fmt.Printf("%d %s\n", req.ID, m.MessageType())
			}
			_ = conn.WriteResponse(req.ID, resp, nil)
		}
	}()

	// With no logs address, log lines go to stderr.
	if err := r.Run(context.Background(), ln.Addr().String(), ""); err != nil {
		fmt.Println(err)
	}
	<-done
}
