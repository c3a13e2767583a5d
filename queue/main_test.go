package queue_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/taskwire/taskwire/internal/natstest"
	"github.com/taskwire/taskwire/queue"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testTimeout bounds every wait in these tests. It only ends a test that
// is failing anyway, so it is generous: on a loaded 2-core CI box with
// -race, TestWatchStoppedUnreadLeavesNoGoroutine's 1,200 KV writes once
// took more than 10s.
const testTimeout = 30 * time.Second

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newClient starts a server and provisions it with cfg.
func newClient(t *testing.T, cfg queue.Config) *queue.Client {
	t.Helper()
	s := natstest.RunServer(t)
	nc := natstest.Connect(t, s)
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	c, err := queue.New(testContext(t), nc, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}
