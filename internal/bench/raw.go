package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskwire/taskwire/protocol"
	"github.com/taskwire/taskwire/queue"
)

// Raw holds the machine's raw limits, measured in the same run.
type Raw struct {
	// JetStreamRTT is publish → pull → ack (double ack) of one activity on
	// a scratch queue, one at a time.
	JetStreamRTT Latency `json:"jetstream_rtt"`
	// ForkExecPerSecond is serial fork+exec+wait of the bench binary in
	// ModeNoop; ForkExec the time of each.
	ForkExecPerSecond float64 `json:"fork_exec_per_s"`
	ForkExec          Latency `json:"fork_exec"`
	// ExecToMain is, of the same runs, from just before the start to the
	// time the child's main stamps: the part of a task's start that
	// dispatch latency includes.
	ExecToMain Latency `json:"exec_to_main"`
	// TruePerSecond and True are the same for the system's true(1), a
	// minimal binary, for scale: the bench binary links a NATS server, the
	// executor and the rest, whose package initialization every task
	// process pays. Absent when there is no true in $PATH.
	TruePerSecond float64 `json:"true_per_s,omitempty"`
	True          Latency `json:"true,omitzero"`
	// HandshakePerSecond is serial Go SDK handshakes: the bench binary in
	// ModeSDK spawned, connected, StartupDetails read, SucceedTask answered,
	// exited. Handshake is spawn → SucceedTask answered.
	HandshakePerSecond float64 `json:"handshake_per_s"`
	Handshake          Latency `json:"handshake"`
}

// rawJetStream measures n publish → pull → ack round trips on queueRaw.
func rawJetStream(ctx context.Context, q *queue.Client, n int, done *atomic.Int64) (Latency, error) {
	cons, err := q.ActivityConsumer(ctx, queueRaw)
	if err != nil {
		return Latency{}, err
	}
	run := fmt.Sprintf("%d", time.Now().UnixNano())
	out := make([]time.Duration, 0, n)
	for i := range n {
		start := time.Now()
		if err := q.PublishActivity(ctx, queueRaw, fmt.Sprintf("raw-%s-%d", run, i), []byte("x")); err != nil {
			return Latency{}, err
		}
		batch, err := cons.Fetch(1, 5*time.Second)
		if err != nil {
			return Latency{}, fmt.Errorf("pull raw activity: %w", err)
		}
		got := 0
		for msg := range batch.All() {
			got++
			if err := msg.DoubleAck(ctx); err != nil {
				return Latency{}, fmt.Errorf("ack raw activity: %w", err)
			}
		}
		if got == 0 {
			return Latency{}, fmt.Errorf("pull raw activity: none in 5s: %v", batch.Err())
		}
		out = append(out, time.Since(start))
		done.Add(1)
	}
	return summarize(out), nil
}

// selfCommand is the bench binary in mode, killed with ctx.
func selfCommand(ctx context.Context, self, mode string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Env = os.Environ()
	for k, v := range childEnv(mode) {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return cmd
}

// childEnv is the environment added for the bench binary in mode. When the
// binary is built with -race, its exit would otherwise sleep for a second
// (the race detector's atexit_sleep_ms); the option means nothing to other
// builds.
func childEnv(mode string) map[string]string {
	return map[string]string{
		EnvMode:  mode,
		"GORACE": strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0"),
	}
}

// rawForkExec measures n serial fork+exec+wait of the commands cmd makes;
// then, when it is not nil, calls after with each run's start time.
func rawForkExec(n int, done *atomic.Int64, cmd func(i int) *exec.Cmd, after func(i int, start time.Time) error) ([]time.Duration, error) {
	out := make([]time.Duration, 0, n)
	for i := range n {
		c := cmd(i)
		start := time.Now()
		if err := c.Run(); err != nil {
			return nil, fmt.Errorf("fork+exec %s: %w", c.Path, err)
		}
		out = append(out, time.Since(start))
		if after != nil {
			if err := after(i, start); err != nil {
				return nil, err
			}
		}
		done.Add(1)
	}
	return out, nil
}

// rawForkExecSelf measures n serial fork+exec+wait of the bench binary in
// ModeNoop, and exec → main from the stamps it writes in stamps.
func rawForkExecSelf(ctx context.Context, self, stamps string, n int, done *atomic.Int64) (runs, toMain []time.Duration, err error) {
	toMain = make([]time.Duration, 0, n)
	name := func(i int) string { return fmt.Sprintf("raw-%d", i) }
	runs, err = rawForkExec(n, done, func(i int) *exec.Cmd {
		cmd := selfCommand(ctx, self, ModeNoop)
		cmd.Env = append(cmd.Env, EnvStampDir+"="+stamps, envTIID+"="+name(i))
		return cmd
	}, func(i int, start time.Time) error {
		at, err := readStamp(stamps, name(i))
		if err != nil {
			return err
		}
		toMain = append(toMain, at.Sub(start))
		return nil
	})
	return runs, toMain, err
}

// envTIID is the task instance id the worker gives a task process, which
// ModeNoop names its stamp after.
const envTIID = "TASKWIRE_TI_ID"

// rawHandshake measures n serial Go SDK handshakes against a minimal
// protocol server: the bench binary in ModeSDK is spawned with the server's
// comm and logs addresses, connects, reads StartupDetails, sends
// SucceedTask, is answered and exits. It returns the durations of whole
// iterations (spawn → exited) and of spawn → SucceedTask answered.
func rawHandshake(ctx context.Context, self string, n int, done *atomic.Int64) (iters, answered []time.Duration, err error) {
	commLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, fmt.Errorf("listen: %w", err)
	}
	defer commLn.Close()
	logsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, fmt.Errorf("listen: %w", err)
	}
	// Log lines are read and dropped.
	var logs sync.WaitGroup
	logs.Add(1)
	go func() {
		defer logs.Done()
		var conns sync.WaitGroup
		defer conns.Wait()
		for {
			c, err := logsLn.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer conns.Done()
				defer c.Close()
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	defer func() {
		logsLn.Close()
		logs.Wait()
	}()
	// Closing the listener is what stops a blocked Accept.
	stopClose := context.AfterFunc(ctx, func() { commLn.Close() })
	defer stopClose()

	iters, answered = make([]time.Duration, 0, n), make([]time.Duration, 0, n)
	for i := range n {
		// A secret per process, presented first on the comm connection, as
		// the worker does it (protocol.AuthFrame).
		secret, err := protocol.NewSecret()
		if err != nil {
			return nil, nil, err
		}
		cmd := selfCommand(ctx, self, ModeSDK, "--comm", commLn.Addr().String(), "--logs", logsLn.Addr().String())
		cmd.Env = append(cmd.Env, protocol.EnvCommSecret+"="+secret)
		start := time.Now()
		if err := cmd.Start(); err != nil {
			return nil, nil, fmt.Errorf("start sdk runtime: %w", err)
		}
		herr := serveNoop(commLn, i, secret)
		at := time.Since(start)
		werr := cmd.Wait()
		if err := errors.Join(herr, werr); err != nil {
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			return nil, nil, fmt.Errorf("sdk handshake %d: %w", i, err)
		}
		iters, answered = append(iters, time.Since(start)), append(answered, at)
		done.Add(1)
	}
	return iters, answered, nil
}

// handshakeTimeout bounds one raw handshake.
const handshakeTimeout = 30 * time.Second

// serveNoop accepts one runtime on ln, checks its secret, sends it
// StartupDetails for task "noop", and answers its SucceedTask.
func serveNoop(ln net.Listener, i int, secret string) error {
	nc, err := ln.Accept()
	if err != nil {
		return fmt.Errorf("accept: %w", err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(handshakeTimeout))
	if err := protocol.ReadAuth(nc, secret); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	conn := protocol.NewConn(nc, protocol.CodecMsgpack, 0)
	id := fmt.Sprintf("raw-%d", i)
	if err := conn.WriteResponse(0, protocol.StartupDetails{
		TI:        protocol.TaskInstance{ID: id, DagID: "bench", TaskID: "noop", RunID: "raw", MapIndex: -1, TryNumber: 1},
		Context:   protocol.RunContext{MaxTries: 1, Queue: queueGo, Entrypoint: "noop"},
		StartDate: time.Now().UTC().Format(time.RFC3339Nano),
	}, nil); err != nil {
		return fmt.Errorf("write StartupDetails: %w", err)
	}
	req, err := conn.ReadRequest()
	if err != nil {
		return fmt.Errorf("read request: %w", err)
	}
	if _, ok := req.Msg.(protocol.SucceedTask); !ok {
		return fmt.Errorf("got %s, want SucceedTask", req.Msg.MessageType())
	}
	if err := conn.WriteResponse(req.ID, protocol.OKResponse{}, nil); err != nil {
		return fmt.Errorf("answer SucceedTask: %w", err)
	}
	return nil
}
