package sdk_test

import (
	"context"
	"fmt"
	"net"

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
		conn := protocol.NewConn(c, protocol.CodecMsgpack, 0)
		_ = conn.WriteResponse(0, protocol.StartupDetails{
			TI:      protocol.TaskInstance{ID: "ti-1", DagID: "etl", TaskID: "greet", RunID: "r1", MapIndex: -1, TryNumber: 1},
			Context: protocol.RunContext{Entrypoint: "greet"},
		}, nil)
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
	// Output:
	// 2 SetXCom greeting=hello, etl
	// 3 SucceedTask
}
