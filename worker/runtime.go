package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/execution"
	"github.com/taskwire/taskwire/protocol"
)

// requestTimeout bounds the API call answering one task request.
const requestTimeout = 60 * time.Second

// runSDK runs the job in the queue's SDK runtime: it listens on two loopback
// ports (comm and logs), starts the runtime with their addresses and a
// fresh secret (in its environment only), sends StartupDetails once it
// connects and presents the secret, and answers its requests until it
// exits.
func (j *job) runSDK(ctx context.Context) outcome {
	secret, err := protocol.NewSecret()
	if err != nil {
		return retry("%v", err)
	}
	commLn, logsLn, cleanup, err := listenRuntime(j.rt.Socket)
	if err != nil {
		return retry("%v", err)
	}
	defer cleanup()

	comm, logs := commLn.Addr().String(), logsLn.Addr().String()
	argv := make([]string, len(j.rt.Command))
	for i, a := range j.rt.Command {
		argv[i] = strings.NewReplacer(PlaceholderCommAddr, comm, PlaceholderLogsAddr, logs).Replace(a)
	}
	env := j.processEnv(true, []string{
		"TASKWIRE_COMM_ADDR=" + comm,
		"TASKWIRE_LOGS_ADDR=" + logs,
		"TASKWIRE_CODEC=" + j.rt.Codec.String(),
	})
	if j.rt.Airflow != nil {
		env = append(env, j.rt.Airflow.env()...)
	}
	// Last, so that no runtime or entrypoint setting replaces it.
	env = append(env, protocol.EnvCommSecret+"="+secret)
	p, err := j.w.startProcessVia(j.zyg, argv, env, j.rt.Dir, j.tl.output, j.ti.ID)
	if err != nil {
		return retry("start runtime: %v", err)
	}

	ls := &logServer{w: j.w, ln: logsLn, tl: j.tl, secret: secret, tiID: j.ti.ID, conns: map[net.Conn]bool{}}
	ls.wg.Add(1)
	go ls.serve()
	defer func() {
		// The process is gone: its log connections end with it; a copy of
		// the socket kept by an escaped process is cut after the kill grace.
		ls.stop(j.w.cfg.KillGrace)
	}()

	conn, out, ok := j.handshake(ctx, commLn, p, secret)
	if !ok {
		return out
	}
	return j.serve(ctx, conn, p)
}

// listenRuntime opens the comm and logs listeners of a runtime process:
// loopback TCP ports, or unix sockets in a fresh directory only the
// worker's user can enter.
func listenRuntime(socket string) (comm, logs net.Listener, cleanup func(), err error) {
	network, addr := "tcp", func(string) string { return "127.0.0.1:0" }
	dir := ""
	if socket == SocketUnix {
		if dir, err = os.MkdirTemp("", "taskwire-rt-"); err != nil {
			return nil, nil, nil, fmt.Errorf("runtime socket dir: %w", err)
		}
		network, addr = "unix", func(name string) string { return filepath.Join(dir, name) }
	}
	cleanup = func() {
		if comm != nil {
			comm.Close()
		}
		if logs != nil {
			logs.Close()
		}
		if dir != "" {
			os.RemoveAll(dir)
		}
	}
	if comm, err = net.Listen(network, addr("comm.sock")); err != nil {
		cleanup()
		return nil, nil, nil, fmt.Errorf("listen for runtime: %w", err)
	}
	if logs, err = net.Listen(network, addr("logs.sock")); err != nil {
		cleanup()
		return nil, nil, nil, fmt.Errorf("listen for runtime logs: %w", err)
	}
	return comm, logs, cleanup, nil
}

// handshake waits for the runtime to connect and present its secret;
// connections that do not (another local process that found the port
// first, an SDK without the secret) are refused and counted, and the gate
// keeps accepting until the handshake timeout. Once the runtime is in, the
// comm listener closes: a cold runtime has one comm connection. When it
// does not come, handshake returns the try's outcome and false, with the
// process gone.
func (j *job) handshake(ctx context.Context, ln net.Listener, p *proc, secret string) (net.Conn, outcome, bool) {
	g := newCommGate(j.w, ln, secret, j.ti.ID)
	t := time.NewTimer(j.w.cfg.HandshakeTimeout)
	defer t.Stop()
	done := func() net.Conn {
		g.stop()
		select {
		case c := <-g.won:
			return c
		default:
			return nil
		}
	}
	fail := func(out outcome) (net.Conn, outcome, bool) {
		if c := done(); c != nil {
			c.Close()
		}
		p.terminate()
		p.wait()
		return nil, out, false
	}
	select {
	case c := <-g.won:
		done()
		return c, outcome{}, true
	case <-p.done:
		// It may have connected, sent all it had to say and exited at once:
		// its connection may still wait in the backlog or in its auth: give
		// the gate a moment, up to a second while one is in its auth.
		if c := g.settle(min(time.Second, j.w.authTimeout())); c != nil {
			done()
			return c, outcome{}, true
		}
		if c := done(); c != nil {
			return c, outcome{}, true
		}
		p.wait()
		status := p.exitStatus()
		if why := g.refused(); why != "" {
			j.tl.worker("error", "runtime exited without authenticating on the comm channel: "+why)
			return nil, retry("runtime exited (%s) without authenticating on the comm channel: %s; stderr tail: %s", status, why, p.stderr.String()), false
		}
		j.tl.worker("error", "runtime exited before handshake: "+status)
		return nil, retry("runtime exited before handshake: %s, stderr tail: %s", status, p.stderr.String()), false
	case <-t.C:
		if c := done(); c != nil {
			return c, outcome{}, true // it came in at the last moment
		}
		if why := g.refused(); why != "" {
			msg := fmt.Sprintf("runtime did not authenticate on the comm channel within %s: %s", j.w.cfg.HandshakeTimeout, why)
			j.tl.worker("error", msg)
			return fail(retry("%s", msg))
		}
		j.tl.worker("error", fmt.Sprintf("runtime did not connect within %s", j.w.cfg.HandshakeTimeout))
		return fail(retry("runtime did not connect within %s", j.w.cfg.HandshakeTimeout))
	case <-ctx.Done():
		return fail(outcome{killed: context.Cause(ctx)})
	}
}

// serve sends StartupDetails and answers the runtime's requests until it
// closes the connection, then waits for the process.
func (j *job) serve(ctx context.Context, c net.Conn, p *proc) outcome {
	if j.rt.Airflow != nil {
		return j.serveWith(ctx, c, p, j.airflowLoop)
	}
	return j.serveWith(ctx, c, p, j.taskwireLoop)
}

// serveLoop speaks one dialect on a runtime's connection: it sends the
// startup message, then reads and answers requests until the stream ends
// or fails (its error is a protocol error). It calls final with the try's
// outcome when a terminal message arrives; final returns false when one
// already did.
type serveLoop func(ctx context.Context, c net.Conn, final func(outcome) bool) error

// taskwireLoop is the serveLoop of taskwire's own dialect.
func (j *job) taskwireLoop(ctx context.Context, c net.Conn, final func(outcome) bool) error {
	conn := protocol.NewConn(c, j.rt.Codec, protocol.MaxFrameSizeDefault)
	_, protoErr := j.exchange(ctx, conn, func(out outcome) { final(out) })
	return protoErr
}

// serveWith runs loop on the runtime's connection c, kills the process
// when ctx ends or when it lingers after its final message, and waits for
// it.
func (j *job) serveWith(ctx context.Context, c net.Conn, p *proc, loop serveLoop) outcome {
	defer c.Close()

	// watcher kills the process when ctx ends or when it lingers after its
	// terminal message, and stops reading once the process is gone.
	var (
		mu       sync.Mutex
		killed   error
		terminal = make(chan struct{})
		termOnce sync.Once
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		var linger <-chan time.Time
		ctxDone, termCh := ctx.Done(), terminal
		for {
			select {
			case <-stop:
				return
			case <-ctxDone:
				mu.Lock()
				if killed == nil {
					killed = context.Cause(ctx)
				}
				cause := killed
				mu.Unlock()
				p.terminateFor(cause)
				ctxDone = nil
			case <-termCh:
				t := time.NewTimer(j.overtime())
				defer t.Stop()
				linger, termCh = t.C, nil
			case <-linger:
				j.tl.worker("warning", fmt.Sprintf("runtime still running %s after its final message: killing it", j.overtime()))
				p.terminate()
				linger = nil
			case <-p.done:
				// What it sent before exiting is still buffered; stop only
				// if a leaked copy of the socket keeps it open.
				_ = c.SetReadDeadline(time.Now().Add(j.w.cfg.KillGrace))
				<-stop
				return
			}
		}
	}()

	var final *outcome
	protoErr := loop(ctx, c, func(out outcome) bool {
		if final != nil {
			return false
		}
		final = &out
		termOnce.Do(func() { close(terminal) })
		return true
	})
	if protoErr != nil {
		j.tl.worker("error", "protocol error: "+protoErr.Error())
		p.terminate()
	}
	c.Close()
	<-p.done
	close(stop)
	wg.Wait()
	p.wait()

	mu.Lock()
	k := killed
	mu.Unlock()
	switch {
	case final != nil:
		return *final
	case protoErr != nil:
		return retry("protocol error: %v", protoErr)
	case k != nil:
		return outcome{killed: k}
	}
	return j.exitOutcome(p, nil)
}

// exchange sends the try's StartupDetails on conn and answers the runtime's
// requests until the connection ends or breaks the protocol; it returns the
// outcome the terminal message reported (nil: none came) and the protocol
// error. onFinal is called when the terminal message arrives. Cold and warm
// tries share it: only what surrounds the connection differs.
func (j *job) exchange(ctx context.Context, conn *protocol.Conn, onFinal func(outcome)) (final *outcome, protoErr error) {
	if err := conn.WriteResponse(0, j.startup, nil); err != nil && !endOfStream(err) {
		return nil, fmt.Errorf("send StartupDetails: %w", err)
	}
	for {
		req, err := conn.ReadRequest()
		if err != nil {
			if !endOfStream(err) {
				protoErr = err
			}
			return final, protoErr
		}
		resp, errResp, term, err := j.answer(ctx, req.Msg)
		if err != nil {
			return final, err
		}
		if term != nil {
			if final == nil {
				final = term
				onFinal(*term)
			} else {
				errResp = badRequest("the task already sent its final message")
				resp = nil
			}
		}
		if err := conn.WriteResponse(req.ID, resp, errResp); err != nil {
			if !endOfStream(err) {
				j.log.Debug("answer runtime", "err", err)
			}
			if final != nil {
				return final, nil
			}
		}
	}
}

// airflowOvertime is how long Airflow's runner may go on after its final
// state (its finalize: callbacks, listeners, rendered fields), as Airflow's
// supervisor allows ([core] task_success_overtime, 20s).
const airflowOvertime = 20 * time.Second

// overtime is how long a runtime may run after its final message before
// it is killed: the kill grace, or Airflow's overtime for its runner.
func (j *job) overtime() time.Duration {
	if j.rt.Airflow != nil {
		return max(j.w.cfg.KillGrace, airflowOvertime)
	}
	return j.w.cfg.KillGrace
}

// endOfStream reports whether err only says that the connection ended.
func endOfStream(err error) bool {
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || (errors.As(err, &ne) && ne.Timeout())
}

func apiError(err error) *protocol.ErrorResponse {
	code := "api_error"
	switch {
	case errors.Is(err, execution.ErrNotFound):
		code = "not_found"
	case errors.Is(err, execution.ErrForbidden), errors.Is(err, execution.ErrUnauthorized):
		code = "forbidden"
	case errors.Is(err, execution.ErrTooLarge):
		// Before bad_request, which it matches too.
		code = "too_large"
	case errors.Is(err, execution.ErrBadRequest):
		code = "bad_request"
	}
	detail := map[string]any{"message": err.Error()}
	var ae *execution.APIError
	if code == "too_large" && errors.As(err, &ae) && ae.Limit > 0 {
		// The SDKs name it: TooLarge.limit (Python), limit() (Java).
		detail["limit"] = ae.Limit
	}
	return &protocol.ErrorResponse{Type: protocol.TypeErrorResponse, Error: code, Detail: detail}
}

func badRequest(format string, args ...any) *protocol.ErrorResponse {
	return &protocol.ErrorResponse{Type: protocol.TypeErrorResponse, Error: "bad_request",
		Detail: map[string]any{"message": fmt.Sprintf(format, args...)}}
}

var okResponse = protocol.OKResponse{Type: protocol.TypeOKResponse}

// answer handles one request. A terminal message returns the try's outcome;
// a message a task may not send returns an error (a protocol error).
func (j *job) answer(ctx context.Context, msg protocol.Message) (protocol.Message, *protocol.ErrorResponse, *outcome, error) {
	switch m := msg.(type) {
	case protocol.MaskSecret:
		j.tl.addMask(m.Value)
		return okResponse, nil, nil, nil
	case protocol.SucceedTask:
		return okResponse, nil, &outcome{state: activity.StateSuccess}, nil
	case protocol.RetryTask:
		reason := m.Reason
		if reason == "" {
			reason = "task asked for a retry"
		}
		return okResponse, nil, &outcome{state: activity.StateUpForRetry, reason: reason}, nil
	case protocol.TaskState:
		switch s := activity.State(m.State); s {
		case activity.StateFailed, activity.StateSkipped, activity.StateRemoved:
			return okResponse, nil, &outcome{state: s, reason: m.Reason}, nil
		}
		return nil, badRequest("TaskState state %q: want failed, skipped or removed", m.State), nil, nil
	case protocol.DeferTask:
		timeout, err := parseTriggerTimeout(m.TriggerTimeout)
		if err != nil {
			return nil, badRequest("DeferTask trigger_timeout %q: want a non-negative duration like \"90s\"", m.TriggerTimeout), nil, nil
		}
		if m.Classpath == "" || m.NextMethod == "" {
			return nil, badRequest("DeferTask needs classpath and next_method"), nil, nil
		}
		if m.NextMethod == failMethod {
			return nil, badRequest("DeferTask next_method %q is reserved", failMethod), nil, nil
		}
		out := deferredOutcome(m.Classpath, m.TriggerKwargs, timeout, m.NextMethod, m.NextKwargs)
		return okResponse, nil, &out, nil
	}

	switch msg.(type) {
	case protocol.GetConnection, protocol.GetVariable, protocol.PutVariable,
		protocol.GetXCom, protocol.SetXCom, protocol.DeleteXCom:
	default:
		return nil, nil, nil, fmt.Errorf("unexpected message %s from the task", msg.MessageType())
	}
	if j.tc == nil {
		return nil, &protocol.ErrorResponse{Type: protocol.TypeErrorResponse, Error: "forbidden",
			Detail: map[string]any{"message": "callbacks have no Execution API access"}}, nil, nil
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	tc, ti := j.tc, j.ti
	own := func(key string) execution.XComKey {
		return execution.XComKey{DagID: ti.DagID, RunID: ti.RunID, TaskID: ti.TaskID, Key: key, MapIndex: ti.MapIndex}
	}
	switch m := msg.(type) {
	case protocol.GetConnection:
		c, err := tc.Connection(rctx, m.ConnID)
		if err != nil {
			return nil, apiError(err), nil, nil
		}
		j.tl.addMask(c.Password)
		j.tl.addNamedMask("extra", c.Extra)
		return protocol.ConnectionResult{Type: protocol.TypeConnectionResult, ConnID: c.ConnID, ConnType: c.ConnType,
			Host: c.Host, Schema: c.Schema, Login: c.Login, Password: c.Password, Port: c.Port, Extra: c.Extra}, nil, nil, nil
	case protocol.GetVariable:
		v, err := tc.Variable(rctx, m.Key)
		if err != nil {
			return nil, apiError(err), nil, nil
		}
		j.tl.addNamedMask(m.Key, v.Value)
		return protocol.VariableResult{Type: protocol.TypeVariableResult, Key: m.Key, Value: v.Value}, nil, nil, nil
	case protocol.PutVariable:
		if err := tc.PutVariable(rctx, m.Key, execution.VariableBody{Key: m.Key, Value: m.Value, Description: m.Description}); err != nil {
			return nil, apiError(err), nil, nil
		}
		return okResponse, nil, nil, nil
	case protocol.GetXCom:
		k := execution.XComKey{DagID: m.DagID, RunID: m.RunID, TaskID: m.TaskID, Key: m.Key, MapIndex: -1}
		if k.DagID == "" {
			k.DagID = ti.DagID
		}
		if k.RunID == "" {
			k.RunID = ti.RunID
		}
		if k.TaskID == "" {
			k.TaskID = ti.TaskID
		}
		if m.MapIndex != nil {
			k.MapIndex = *m.MapIndex
		}
		v, err := tc.XCom(rctx, k)
		if err != nil && !errors.Is(err, execution.ErrNotFound) {
			return nil, apiError(err), nil, nil
		}
		return protocol.XComResult{Type: protocol.TypeXComResult, Key: m.Key, Value: v}, nil, nil, nil
	case protocol.SetXCom:
		if err := tc.SetXCom(rctx, own(m.Key), m.Value); err != nil {
			return nil, apiError(err), nil, nil
		}
		return okResponse, nil, nil, nil
	case protocol.DeleteXCom:
		if err := tc.DeleteXCom(rctx, own(m.Key)); err != nil {
			return nil, apiError(err), nil, nil
		}
		return okResponse, nil, nil, nil
	}
	return nil, nil, nil, fmt.Errorf("unexpected message %s from the task", msg.MessageType())
}

// logServer reads the JSON lines runtimes send on the logs address, on
// connections whose header line presents the runtime's secret.
type logServer struct {
	w      *Worker
	ln     net.Listener
	tl     *taskLog
	secret string
	tiID   string
	wg     sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]bool
	closed bool
}

func (s *logServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil || !s.handle(c) {
			return
		}
	}
}

// handle reads the log connection c (accepted) until it ends; false (c
// closed) once stop has stopped accepting.
func (s *logServer) handle(c net.Conn) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.Close()
		return false
	}
	s.conns[c] = true
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
		peer, h, br, err := s.w.authLogs(c, s.secret)
		if err == nil && !h.Cold() {
			err = errors.New("a warm runtime's log header on a cold try's logs address")
		}
		if err != nil {
			s.w.reject(chanLogs, c, peer, err, "ti_id", s.tiID)
			return
		}
		s.mu.Lock()
		if s.closed {
			// stop's deadline was cleared by the auth: set it again.
			_ = c.SetReadDeadline(time.Now().Add(s.w.cfg.KillGrace))
		}
		s.mu.Unlock()
		readLines(br, func(line string) {
			if strings.TrimSpace(line) != "" {
				s.tl.task([]byte(line))
			}
		})
	}()
	return true
}

// stop stops accepting and waits for the connections to end, cutting them
// after grace. It is called once the runtime has ended: a connection it
// made that the accept loop has not taken yet (a loaded machine schedules
// the loop late) waits in the listener's backlog, and closing the listener
// would drop it with its lines, so those are taken first.
func (s *logServer) stop(grace time.Duration) {
	for _, c := range acceptPending(s.ln) {
		s.handle(c)
	}
	s.ln.Close()
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		_ = c.SetReadDeadline(time.Now().Add(grace))
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// acceptPending accepts, without waiting, the connections waiting in ln's
// backlog (a TCP or unix listener; none for another).
func acceptPending(ln net.Listener) []net.Conn {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	var conns []net.Conn
	_ = rc.Control(func(fd uintptr) {
		for {
			// The listener's descriptor is non-blocking: EAGAIN once the
			// backlog is empty.
			nfd, _, err := syscall.Accept4(int(fd), syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
			if err != nil {
				return
			}
			f := os.NewFile(uintptr(nfd), "log connection")
			c, err := net.FileConn(f)
			f.Close()
			if err == nil {
				conns = append(conns, c)
			}
		}
	})
	return conns
}
