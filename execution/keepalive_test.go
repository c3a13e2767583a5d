package execution

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
)

// dropSecondServer answers the first request of each connection and closes
// the connection on reading the second, unanswered: what a client sees
// when the server closes a kept-alive connection (its idle or header
// timeout) just as the client sends a request on it.
func dropSecondServer(t *testing.T) (url string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(conn)
				for i := 0; ; i++ {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					if i == 1 {
						return
					}
					_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// countWarnings counts the records at Warn and above.
type countWarnings struct{ n atomic.Int64 }

func (h *countWarnings) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h *countWarnings) Handle(context.Context, slog.Record) error {
	h.n.Add(1)
	return nil
}
func (h *countWarnings) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countWarnings) WithGroup(string) slog.Handler      { return h }

// A request a server dropped on a kept-alive connection (no answer, EOF)
// is sent again on a new connection without a word when it is idempotent
// (…/run by the same worker, a heartbeat, a PUT): the warning per dropped
// PATCH …/run of a 1,000-worker fleet was noise, the retry safe.
func TestIdempotentRequestOnAClosingConnectionIsRetriedQuietly(t *testing.T) {
	t.Parallel()
	warns := &countWarnings{}
	c, err := NewClient(ClientConfig{URL: dropSecondServer(t), Logger: slog.New(warns)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.hc.HTTPClient.CloseIdleConnections) // before the server's cleanup waits for them
	ctx := t.Context()
	run := RunRequest{Hostname: "h", PID: 1, WorkerID: "w"}
	for i := range 3 {
		if _, err := c.Run(ctx, "tok", "ti", run); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if err := c.Task("ti", "tok").Heartbeat(ctx, HeartbeatRequest{Hostname: "h", PID: 1, WorkerID: "w"}); err != nil {
			t.Fatalf("heartbeat %d: %v", i, err)
		}
	}
	if n := warns.n.Load(); n != 0 {
		t.Fatalf("%d warnings for requests retried on a new connection, want none", n)
	}
	// A request that is not idempotent is retried too (by the client's
	// retries, which say so): a second …/state is answered 409 at worst.
	if err := c.Task("ti", "tok").State(ctx, StateRequest{State: activity.StateSuccess}); err != nil {
		t.Fatalf("state: %v", err)
	}
}
