package sdk

import (
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
// Run does, its logs on a connection of their own to logsAddr named by a
// protocol.LogStreamHeader line. Once a task has reported its outcome, its
// slot connects again for the next one. The worker cancels a task by
// half-closing its connection: the task's context is cancelled, and its
// slot's connection closes once the task returned.
//
// RunWarm returns when ctx ends or the worker is gone (a slot cannot
// connect); tasks share the process's memory and globals.
func (r *Runtime) RunWarm(ctx context.Context, commAddr, logsAddr string, slots int) error {
	if slots < 1 {
		return fmt.Errorf("warm runtime: %d slots, want at least 1", slots)
	}
	var wg sync.WaitGroup
	errs := make(chan error, slots)
	for range slots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- r.warmSlot(ctx, commAddr, logsAddr)
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
func (r *Runtime) warmSlot(ctx context.Context, commAddr, logsAddr string) error {
	var d net.Dialer
	for ctx.Err() == nil {
		nc, err := d.DialContext(ctx, Network(commAddr), commAddr)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("connect to the worker: %w", err)
		}
		err = r.serve(ctx, nc, func(sd protocol.StartupDetails) (io.Writer, func()) {
			return r.warmLogs(ctx, logsAddr, sd)
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

// warmLogs opens a task's log stream; lines go to stderr when it cannot.
func (r *Runtime) warmLogs(ctx context.Context, logsAddr string, sd protocol.StartupDetails) (io.Writer, func()) {
	lw := &logWriter{}
	if logsAddr == "" {
		return lw, func() {}
	}
	var d net.Dialer
	lc, err := d.DialContext(ctx, Network(logsAddr), logsAddr)
	if err == nil {
		_, err = lc.Write(protocol.LogStreamHeader{TIID: sd.TI.ID, TryNumber: sd.TI.TryNumber}.MarshalLine())
		if err != nil {
			lc.Close()
		}
	}
	if err != nil {
		lw.err = err
		fmt.Fprintf(os.Stderr, "taskwire sdk: logs to stderr: %v\n", err)
		return lw, func() {}
	}
	lw.w = lc
	var once sync.Once
	return lw, func() {
		once.Do(func() {
			lw.mu.Lock()
			lw.err = net.ErrClosed
			lw.mu.Unlock()
			lc.Close()
		})
	}
}
