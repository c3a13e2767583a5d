package triggerer

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/taskwire/taskwire/internal/natstest"
	"github.com/taskwire/taskwire/queue"
	"github.com/taskwire/taskwire/queue/queuetest"
)

// A triggerer whose NATS user may not read the rate_limits bucket does
// not start (its polls would go unpaced, past the cluster's limits): it
// fails at once with an error that says which bucket and why.
func TestTriggererRateLimitsRefused(t *testing.T) {
	t.Parallel()
	opts, err := server.ProcessConfigFile("../examples/nats/permissions.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range opts.Users {
		if u.Username == "triggerer" {
			u.Permissions.Publish.Allow = slices.DeleteFunc(u.Permissions.Publish.Allow, func(s string) bool {
				return strings.Contains(s, "rate_limits")
			})
		}
	}
	ns := natstest.RunServerWith(t, func(o *server.Options) {
		o.Users, o.Username, o.Password = opts.Users, "", ""
	})
	admin, err := queuetest.Connect(ns.ClientURL(), queuetest.ConnOpts{User: "executor", Password: "change-me-executor"})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	aq, err := queue.New(t.Context(), admin, queue.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := aq.TriggerConsumer(t.Context()); err != nil {
		t.Fatal(err)
	}
	nc, err := queuetest.Connect(ns.ClientURL(), queuetest.ConnOpts{User: "triggerer", Password: "change-me-triggerer", InboxPrefix: "_INBOX_triggerer"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	q, err := queue.New(t.Context(), nc, queue.Config{Bind: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := New(Config{Queue: q, ID: "t1", Logger: slog.New(slog.DiscardHandler), Metrics: NewMetrics(prometheus.NewRegistry())})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = tr.Start(t.Context())
	took := time.Since(start)
	defer func() { _ = tr.Stop(context.Background()) }()
	t.Logf("Start: %v after %v", err, took)
	if err == nil || !strings.Contains(err.Error(), "rate_limits") {
		t.Fatalf("Start with the rate_limits bucket refused: %v, want an error naming it", err)
	}
	if took > 15*time.Second {
		t.Errorf("Start failed after %v, want at once", took)
	}
}
