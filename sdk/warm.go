package sdk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"

	"github.com/taskwire/taskwire/protocol"
)

// RunWarm serves tasks as a warm runtime (the worker's warm mode): it keeps
// slots connections open to the worker at commAddr, each waiting for a
// task's StartupDetails, and runs each task in its own goroutine exactly as
// Run does. Every task's log lines go on the process's one log connection
// to logsAddr (a mux protocol.LogStreamHeader, then protocol.MuxLogLine lines, a
// task's empty line sent before its outcome). Once a task has reported its
// outcome, its slot connects again for the next one. The worker cancels a
// task by half-closing its connection: the task's context is cancelled,
// and its slot's connection closes once the task returned.
//
// RunWarm returns when ctx ends or the worker is gone (a slot cannot
// connect); tasks share the process's memory and globals.
func (r *Runtime) RunWarm(ctx context.Context, commAddr, logsAddr string, slots int) error {
	if slots < 1 {
		return fmt.Errorf("warm runtime: %d slots, want at least 1", slots)
	}
	mux := &muxLog{}
	if logsAddr != "" {
		lc, err := r.dial(ctx, logsAddr, protocol.LogStreamHeader{Mux: true, Secret: r.secret()}.MarshalLine())
		if err != nil {
			fmt.Fprintf(os.Stderr, "taskwire sdk: logs to stderr: %v\n", err)
		} else {
			mux.c = lc
			defer lc.Close()
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, slots)
	for range slots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- r.warmSlot(ctx, commAddr, mux)
		}()
	}
	wg.Wait()
	close(errs)
	if ctx.Err() != nil {
		return nil
	}
	return <-errs
}

// warmSlot runs one slot's tasks until the worker is gone.
func (r *Runtime) warmSlot(ctx context.Context, commAddr string, mux *muxLog) error {
	auth := protocol.AuthFrame(r.secret())
	for ctx.Err() == nil {
		nc, err := r.dial(ctx, commAddr, auth)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("connect to the worker: %w", err)
		}
		err = r.serve(ctx, nc, func(sd protocol.StartupDetails) (io.Writer, func()) {
			return mux.try(sd)
		})
		if err != nil && !errors.Is(err, ErrWorkerGone) && !errors.Is(err, io.EOF) {
			// The task's own outcome is reported; this is a connection
			// ended before StartupDetails (the worker retired the slot)
			// or a report that could not be sent: the slot goes on.
			fmt.Fprintln(os.Stderr, "taskwire sdk: warm slot:", err)
		}
	}
	return nil
}

// muxLog is a warm process's one log connection, shared by its tasks; nil
// c (or a failed write) sends the lines to stderr.
type muxLog struct {
	mu  sync.Mutex
	c   net.Conn
	err error
	buf []byte
}

// send writes the non-empty lines of p, each prefixed by prefix, in one
// write; end writes the try's empty line instead. False when the lines
// must go to stderr.
func (m *muxLog) send(prefix string, p []byte, end bool) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.c == nil || m.err != nil {
		return false
	}
	b := m.buf[:0]
	if end {
		b = append(append(b, prefix...), '\n')
	}
	for len(p) > 0 {
		line := p
		if i := bytes.IndexByte(p, '\n'); i >= 0 {
			line, p = p[:i], p[i+1:]
		} else {
			p = nil
		}
		if len(line) > 0 {
			b = append(append(append(b, prefix...), line...), '\n')
		}
	}
	m.buf = b
	if len(b) == 0 {
		return true
	}
	if _, err := m.c.Write(b); err != nil {
		m.err = err
		fmt.Fprintf(os.Stderr, "taskwire sdk: log connection failed, logs to stderr: %v\n", err)
		return false
	}
	return true
}

// try returns the writer of task sd's lines and the func that ends them
// (the try's empty line).
func (m *muxLog) try(sd protocol.StartupDetails) (io.Writer, func()) {
	w := &muxTryWriter{m: m, prefix: string(protocol.MuxLogLine(sd.TI.ID, sd.TI.TryNumber, nil))}
	w.prefix = w.prefix[:len(w.prefix)-1] // without the newline
	var once sync.Once
	return w, func() {
		once.Do(func() {
			w.mu.Lock()
			w.closed = true
			w.mu.Unlock()
			m.send(w.prefix, nil, true)
		})
	}
}

// muxTryWriter writes one task's lines on the process's log connection.
type muxTryWriter struct {
	m      *muxLog
	prefix string

	mu     sync.Mutex
	closed bool
}

func (w *muxTryWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	closed := w.closed
	w.mu.Unlock()
	if !closed && w.m.send(w.prefix, p, false) {
		return len(p), nil
	}
	return os.Stderr.Write(p)
}
