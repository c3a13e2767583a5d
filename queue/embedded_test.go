package queue_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/taskwire/taskwire/internal/natstest"
	"github.com/taskwire/taskwire/queue"
)

func TestEmbeddedStartShutdown(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	e, err := queue.StartEmbedded(queue.EmbeddedConfig{
		Port:     -1,
		DataDir:  dir,
		User:     "tw",
		Password: "secret",
		Logger:   testLogger(t),
	})
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	defer e.Shutdown()
	if !e.Server().JetStreamEnabled() {
		t.Fatal("JetStream not enabled")
	}
	if got := e.Server().StoreDir(); got != dir+"/jetstream" {
		t.Fatalf("store dir = %s, want %s/jetstream", got, dir)
	}
	ctx := testContext(t)
	if _, err := queue.Connect(ctx, queue.ConnConfig{URL: e.ClientURL(), Logger: testLogger(t)}); err == nil {
		t.Fatal("connected without credentials")
	}
	nc, err := queue.Connect(ctx, queue.ConnConfig{URL: e.ClientURL(), User: "tw", Password: "secret", Name: "test", Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	defer nc.Close()
	if _, err := queue.New(ctx, nc, queue.Config{Logger: testLogger(t)}); err != nil {
		t.Fatalf("New: %v", err)
	}
	e.Shutdown()
	e.Shutdown() // idempotent
	if e.Server().Running() {
		t.Fatal("server still running after Shutdown")
	}
}

func TestEmbeddedNeedsDataDir(t *testing.T) {
	t.Parallel()
	if _, err := queue.StartEmbedded(queue.EmbeddedConfig{Port: -1}); err == nil {
		t.Fatal("StartEmbedded without DataDir succeeded")
	}
}

func TestConnectFailsFast(t *testing.T) {
	t.Parallel()
	// A port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "nats://" + l.Addr().String()
	l.Close()
	start := time.Now()
	if _, err := queue.Connect(testContext(t), queue.ConnConfig{URL: url, Logger: testLogger(t)}); err == nil {
		t.Fatal("Connect to a closed port succeeded")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Connect took %s to fail", d)
	}
}

func TestConnectHonoursContext(t *testing.T) {
	t.Parallel()
	s := natstest.RunServer(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := queue.Connect(ctx, queue.ConnConfig{URL: s.ClientURL()}); err == nil {
		t.Fatal("Connect with a cancelled context succeeded")
	}
	nc, err := queue.Connect(testContext(t), queue.ConnConfig{URL: s.ClientURL(), Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	nc.Close()
}
