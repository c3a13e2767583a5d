package queue

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// Conn is a connection to NATS, as [Connect] returns it. Services pass it
// to [New] and to the functions below; they do not use it otherwise.
type Conn = nats.Conn

// InProcessServer is a NATS server of this process a connection can reach
// without the network (see [ConnConfig].InProcess, [Embedded].Server).
type InProcessServer = nats.InProcessConnProvider

// ConnReady is nil while nc is connected, and says its state otherwise:
// a readiness check.
func ConnReady(nc *Conn) error {
	if !nc.IsConnected() {
		return fmt.Errorf("nats: %s", nc.Status())
	}
	return nil
}

// ConnConnected reports whether nc is connected now.
func ConnConnected(nc *Conn) bool { return nc.IsConnected() }

// ConnReconnects is how many times nc was re-established.
func ConnReconnects(nc *Conn) uint64 { return nc.Stats().Reconnects }

// Drain drains nc (its subscriptions end, what was published is flushed)
// and closes it, waiting at most timeout before closing it outright: the
// last phase of a service's shutdown.
func Drain(nc *Conn, timeout time.Duration) {
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if nc.IsClosed() {
		return
	}
	if err := nc.Drain(); err != nil {
		nc.Close()
		return
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-closed:
	case <-t.C:
		nc.Close()
	}
}
