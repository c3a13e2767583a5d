package telemetry

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/taskwire/taskwire/internal/natstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServe: /metrics has the NATS series, /readyz follows the ReadyFuncs
// (503 with the reason when one fails), /healthz is ok, and Shutdown ends
// the server.
func TestServe(t *testing.T) {
	ns := natstest.RunServer(t)
	nc := natstest.Connect(t, ns)
	reg := NewRegistry(nc)
	var warm atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", Healthz)
	Route(mux, reg, NATSReady(nc), func() error {
		if !warm.Load() {
			return errors.New("warming up")
		}
		return nil
	})
	srv, err := Listen("127.0.0.1:0", mux, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + srv.Addr()

	if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable || body != "not ready: warming up\n" {
		t.Errorf("/readyz = %d %q", code, body)
	}
	warm.Store(true)
	if code, body := get(t, base+"/readyz"); code != http.StatusOK || body != "ready\n" {
		t.Errorf("/readyz = %d %q", code, body)
	}
	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d", code)
	}
	_, body := get(t, base+"/metrics")
	for _, want := range []string{MetricNATSReconnects + " 0\n", MetricNATSConnected + " 1\n", "go_goroutines "} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	nc.Close()
	if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "nats: CLOSED") {
		t.Errorf("/readyz with NATS closed = %d %q", code, body)
	}
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
}
