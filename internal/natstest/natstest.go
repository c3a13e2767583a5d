// Package natstest runs real, in-process NATS servers with JetStream for
// tests, so no test mocks the broker.
package natstest

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/taskwire/taskwire/internal/freeport"
)

// readyTimeout bounds how long a server may take to accept connections.
const readyTimeout = 10 * time.Second

// Options are the options RunServer uses: JetStream on, 127.0.0.1, a random
// port, storing in t.TempDir(). Change them and pass them to Start, e.g. to
// restart a server on its port and store after setting Port to the port it
// got (see Port).
func Options(t testing.TB) *server.Options {
	t.Helper()
	return &server.Options{
		ServerName: "natstest",
		Host:       "127.0.0.1",
		Port:       -1,
		JetStream:  true,
		StoreDir:   t.TempDir(),
		NoLog:      true,
		NoSigs:     true,
	}
}

// Start starts a server with opts and waits until it accepts connections.
// It is shut down when the test ends (Shutdown twice is fine).
func Start(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("natstest: new server: %v", err)
	}
	s.Start()
	t.Cleanup(func() { Stop(s) })
	if !s.ReadyForConnections(readyTimeout) {
		t.Fatalf("natstest: server %s not ready after %s", opts.ServerName, readyTimeout)
	}
	return s
}

// RunServer starts a nats-server with JetStream on 127.0.0.1 and a random
// port, storing in t.TempDir(). It is shut down when the test ends.
func RunServer(t testing.TB) *server.Server {
	t.Helper()
	return Start(t, Options(t))
}

// RunServerWith is RunServer with the options changed by configure (when
// not nil) before the server starts: authentication, TLS, accounts.
func RunServerWith(t testing.TB, configure func(*server.Options)) *server.Server {
	t.Helper()
	opts := Options(t)
	if configure != nil {
		configure(opts)
	}
	return Start(t, opts)
}

// Stop shuts s down and waits until it is.
func Stop(s *server.Server) {
	s.Shutdown()
	s.WaitForShutdown()
}

// Port is the client port s listens on.
func Port(s *server.Server) int { return s.Addr().(*net.TCPAddr).Port }

// Cluster is a NATS cluster of embedded servers with JetStream.
type Cluster struct {
	Servers []*server.Server
	// Opts are the servers' options, to restart one with Start.
	Opts []*server.Options
}

// URLs is the client URLs of every server, comma separated, as
// --nats-url takes them.
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.Opts))
	for i, o := range c.Opts {
		urls[i] = fmt.Sprintf("nats://127.0.0.1:%d", o.Port)
	}
	return strings.Join(urls, ",")
}

// RunCluster starts n servers (n ≥ 3 for JetStream replication) clustered
// over routes on 127.0.0.1, each storing in its own t.TempDir(), and waits
// until JetStream has a meta leader that every server follows.
func RunCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	ports := freePorts(t, 2*n)
	routes := make([]string, n)
	for i := range n {
		routes[i] = fmt.Sprintf("nats://127.0.0.1:%d", ports[n+i])
	}
	c := &Cluster{}
	for i := range n {
		o := Options(t)
		o.ServerName = fmt.Sprintf("n%d", i)
		o.Port = ports[i]
		o.Cluster = server.ClusterOpts{Name: "natstest", Host: "127.0.0.1", Port: ports[n+i]}
		o.Routes = server.RoutesFromStr(strings.Join(routes, ","))
		c.Opts = append(c.Opts, o)
	}
	for _, o := range c.Opts {
		s, err := server.NewServer(o)
		if err != nil {
			t.Fatalf("natstest: new server %s: %v", o.ServerName, err)
		}
		s.Start()
		t.Cleanup(func() { Stop(s) })
		c.Servers = append(c.Servers, s)
	}
	for _, s := range c.Servers {
		if !s.ReadyForConnections(readyTimeout) {
			t.Fatalf("natstest: server %s not ready after %s", s.Name(), readyTimeout)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for !c.jetStreamReady() {
		if time.Now().After(deadline) {
			t.Fatal("natstest: the JetStream cluster has no meta leader after 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return c
}

// jetStreamReady reports whether a meta leader is elected and every running
// server knows it.
func (c *Cluster) jetStreamReady() bool {
	leader := false
	for _, s := range c.Servers {
		if !s.Running() {
			continue
		}
		if !s.JetStreamIsCurrent() {
			return false
		}
		leader = leader || s.JetStreamIsLeader()
	}
	return leader
}

// freePorts returns n distinct ports free on 127.0.0.1 a moment ago, from
// outside the kernel's ephemeral range (see package freeport).
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		p, err := freeport.Port("127.0.0.1")
		if err != nil {
			t.Fatalf("natstest: free port: %v", err)
		}
		ports[i] = p
	}
	return ports
}

// Connect connects to s (in this process or a Proc); the connection is
// closed when the test ends.
func Connect(t testing.TB, s ClientURLer) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), nats.Name(t.Name()))
	if err != nil {
		t.Fatalf("natstest: connect %s: %v", s.ClientURL(), err)
	}
	t.Cleanup(nc.Close)
	return nc
}
