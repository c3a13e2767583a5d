package sdk_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/taskwire/taskwire/protocol"
)

// testSecret is the runtime's secret in these tests: the fake workers
// check that every connection presents it first, as the worker does.
const testSecret = "0123456789abcdef0123456789abcdef"

func TestMain(m *testing.M) {
	os.Setenv(protocol.EnvCommSecret, testSecret)
	goleak.VerifyTestMain(m)
}

// fakeWorker is the worker's side of the protocol, on real sockets: it
// sends StartupDetails, answers requests from an in-memory store, and
// records what the task sent.
type fakeWorker struct {
	codec   protocol.Codec
	startup protocol.StartupDetails
	comm    net.Listener
	logs    net.Listener

	mu          sync.Mutex
	variables   map[string]string
	connections map[string]protocol.ConnectionResult
	xcoms       map[string]any
	requests    []protocol.Message
	terminals   []protocol.Message
	// answer, when set, answers a request before the store does.
	answer func(protocol.Message) (protocol.Message, *protocol.ErrorResponse, bool)
	// dropAfter, when positive, closes the connection on that request.
	dropAfter int

	lines chan map[string]any
	ended chan struct{} // closed when the comm connection ends
	wg    sync.WaitGroup

	connMu sync.Mutex
	conns  []net.Conn
}

// worker starts a fake worker for a task; opts adjust it before it listens.
func worker(t *testing.T, codec protocol.Codec, task string, opts ...func(*fakeWorker)) *fakeWorker {
	t.Helper()
	w := &fakeWorker{
		codec: codec,
		startup: protocol.StartupDetails{
			TI:         protocol.TaskInstance{ID: "ti-1", DagID: "etl", TaskID: task, RunID: "run-1", MapIndex: -1, TryNumber: 1},
			Context:    protocol.RunContext{MaxTries: 2, Queue: "go", Entrypoint: task, Params: map[string]any{"day": "2026-11-22"}},
			StartDate:  "2026-11-22T08:00:00Z",
			NextMethod: "",
		},
		variables:   map[string]string{},
		connections: map[string]protocol.ConnectionResult{},
		xcoms:       map[string]any{},
		lines:       make(chan map[string]any, 1000),
		ended:       make(chan struct{}),
	}
	for _, o := range opts {
		o(w)
	}
	var err error
	if w.comm, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if w.logs, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	w.wg.Add(2)
	go w.serveComm(t)
	go w.serveLogs(t)
	t.Cleanup(func() {
		w.comm.Close()
		w.logs.Close()
		w.connMu.Lock()
		for _, c := range w.conns {
			c.Close()
		}
		w.connMu.Unlock()
		w.wg.Wait()
	})
	return w
}

func (w *fakeWorker) track(c net.Conn) {
	w.connMu.Lock()
	w.conns = append(w.conns, c)
	w.connMu.Unlock()
}

func xcomKey(dag, run, task, key string) string { return dag + "/" + run + "/" + task + "/" + key }

func notFound(what string) *protocol.ErrorResponse {
	return &protocol.ErrorResponse{Error: "not_found", Detail: map[string]any{"message": what + " not found"}}
}

func (w *fakeWorker) serveComm(t *testing.T) {
	defer w.wg.Done()
	defer close(w.ended)
	c, err := w.comm.Accept()
	if err != nil {
		return
	}
	w.track(c)
	defer c.Close()
	if err := protocol.ReadAuth(c, testSecret); err != nil {
		t.Errorf("fake worker: auth frame: %v", err)
		return
	}
	conn := protocol.NewConn(c, w.codec, 0)
	if err := conn.WriteResponse(0, w.startup, nil); err != nil {
		t.Errorf("fake worker: send StartupDetails: %v", err)
		return
	}
	for n := 1; ; n++ {
		req, err := conn.ReadRequest()
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				t.Errorf("fake worker: read request: %v", err)
			}
			return
		}
		if n == w.dropAfter {
			return
		}
		msg, errResp := w.handle(req.Msg)
		if err := conn.WriteResponse(req.ID, msg, errResp); err != nil {
			t.Errorf("fake worker: answer %d: %v", req.ID, err)
			return
		}
	}
}

func (w *fakeWorker) handle(m protocol.Message) (protocol.Message, *protocol.ErrorResponse) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.requests = append(w.requests, m)
	ok := protocol.OKResponse{}
	if w.answer != nil {
		if msg, errResp, done := w.answer(m); done {
			return msg, errResp
		}
	}
	switch m.(type) {
	case protocol.SucceedTask, protocol.TaskState, protocol.RetryTask, protocol.DeferTask:
		if len(w.terminals) > 0 {
			return nil, &protocol.ErrorResponse{Error: "bad_request", Detail: map[string]any{"message": "the task already sent its final message"}}
		}
		w.terminals = append(w.terminals, m)
		return ok, nil
	}
	ti := w.startup.TI
	switch m := m.(type) {
	case protocol.GetVariable:
		v, found := w.variables[m.Key]
		if !found {
			return nil, notFound("variable " + m.Key)
		}
		return protocol.VariableResult{Key: m.Key, Value: v}, nil
	case protocol.PutVariable:
		w.variables[m.Key] = m.Value
		return ok, nil
	case protocol.GetConnection:
		c, found := w.connections[m.ConnID]
		if !found {
			return nil, notFound("connection " + m.ConnID)
		}
		return c, nil
	case protocol.SetXCom:
		w.xcoms[xcomKey(ti.DagID, ti.RunID, ti.TaskID, m.Key)] = m.Value
		return ok, nil
	case protocol.GetXCom:
		return protocol.XComResult{Key: m.Key, Value: w.xcoms[xcomKey(m.DagID, m.RunID, m.TaskID, m.Key)]}, nil
	case protocol.DeleteXCom:
		delete(w.xcoms, xcomKey(ti.DagID, ti.RunID, ti.TaskID, m.Key))
		return ok, nil
	case protocol.MaskSecret:
		return ok, nil
	}
	return nil, &protocol.ErrorResponse{Error: "bad_request", Detail: map[string]any{"message": "unexpected " + m.MessageType()}}
}

func (w *fakeWorker) serveLogs(t *testing.T) {
	defer w.wg.Done()
	for {
		c, err := w.logs.Accept()
		if err != nil {
			return
		}
		w.track(c)
		sc := bufio.NewScanner(c)
		if !sc.Scan() {
			c.Close()
			continue
		}
		if h, err := protocol.ParseLogStreamHeader(sc.Bytes()); err != nil || !h.Cold() || h.Secret != testSecret {
			t.Errorf("log header %q: %+v, %v", sc.Text(), h, err)
		}
		for sc.Scan() {
			var rec map[string]any
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				t.Errorf("log line %q is not JSON: %v", sc.Text(), err)
				continue
			}
			w.lines <- rec
		}
		c.Close()
	}
}

// terminal waits for the task's terminal message.
func (w *fakeWorker) terminal(t *testing.T) protocol.Message {
	t.Helper()
	select {
	case <-w.ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the task did not hang up")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.terminals) != 1 {
		t.Fatalf("terminal messages %#v, want exactly one", w.terminals)
	}
	return w.terminals[0]
}

// line waits for a log line matching ok.
func (w *fakeWorker) line(t *testing.T, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case rec := <-w.lines:
			if ok(rec) {
				return rec
			}
		case <-timeout:
			t.Fatal("no matching log line")
		}
	}
}

var codecs = []protocol.Codec{protocol.CodecMsgpack, protocol.CodecJSON}

// listenSilent returns the address of a listener that accepts connections
// and never writes to them.
func listenSilent(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}
