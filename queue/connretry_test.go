package queue_test

import (
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/taskwire/taskwire/internal/natstest"
	"github.com/taskwire/taskwire/internal/testbin"
	"github.com/taskwire/taskwire/queue"
)

// TestConnectRetryWaitsForTheServer: started with no server on the port,
// ConnectRetry keeps trying and connects once one comes up there.
func TestConnectRetryWaitsForTheServer(t *testing.T) {
	t.Parallel()
	addr := testbin.FreeAddr(t)
	_, portS, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portS)
	type result struct {
		nc  *queue.Conn
		err error
	}
	done := make(chan result, 1)
	ctx := testContext(t)
	go func() {
		nc, err := queue.ConnectRetry(ctx, queue.ConnConfig{URL: "nats://" + addr, Logger: testLogger(t)}, 0)
		done <- result{nc, err}
	}()
	select {
	case r := <-done:
		t.Fatalf("ConnectRetry returned with no server: %v", r.err)
	case <-time.After(time.Second): // a few attempts
	}
	opts := natstest.Options(t)
	opts.Port = port
	natstest.Start(t, opts)
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("ConnectRetry: %v", r.err)
		}
		r.nc.Close()
	case <-time.After(30 * time.Second):
		t.Fatal("ConnectRetry did not connect once the server was up")
	}
}

// TestConnectRetryGivesUp: the timeout bounds the retries; an error that
// waiting cannot fix (a refused password) is returned at once.
func TestConnectRetryGivesUp(t *testing.T) {
	t.Parallel()
	start := time.Now()
	_, err := queue.ConnectRetry(testContext(t), queue.ConnConfig{URL: "nats://" + testbin.FreeAddr(t), Logger: testLogger(t)}, time.Second)
	if err == nil || !errors.Is(err, nats.ErrNoServers) || time.Since(start) > 10*time.Second {
		t.Fatalf("ConnectRetry with a 1s timeout = %v after %s", err, time.Since(start))
	}

	s := natstest.RunServerWith(t, func(o *server.Options) { o.Username, o.Password = "u", "right" })
	start = time.Now()
	_, err = queue.ConnectRetry(testContext(t), queue.ConnConfig{URL: s.ClientURL(), User: "u", Password: "wrong", Logger: testLogger(t)}, 0)
	if err == nil || !errors.Is(err, nats.ErrAuthorization) || time.Since(start) > 5*time.Second {
		t.Fatalf("ConnectRetry with a wrong password = %v after %s, want an authorization error at once", err, time.Since(start))
	}
}
