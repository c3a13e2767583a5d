// Package telemetry is what every taskwire binary serves for operations:
// Prometheus /metrics (prometheus/client_golang), /healthz (the process is
// up) and /readyz (it is connected to NATS and its own parts are ready).
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/taskwire/taskwire/queue"
)

// Metric names common to the binaries.
const (
	MetricNATSReconnects = "taskwire_nats_reconnects_total"
	MetricNATSConnected  = "taskwire_nats_connected"
)

// NewRegistry returns a registry with the Go runtime and process collectors
// and, for nc, the NATS reconnect counter and connected gauge (read from the
// connection's own statistics when scraped: nothing on the hot path).
func NewRegistry(nc *queue.Conn) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if nc != nil {
		reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: MetricNATSReconnects,
				Help: "Times the NATS connection was re-established."},
				func() float64 { return float64(queue.ConnReconnects(nc)) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: MetricNATSConnected,
				Help: "1 while connected to NATS, else 0."},
				func() float64 {
					if queue.ConnConnected(nc) {
						return 1
					}
					return 0
				}),
		)
	}
	return reg
}

// ReadyFunc says why the process is not ready, or nil when it is.
type ReadyFunc func() error

// NATSReady is a ReadyFunc: ready while nc is connected.
func NATSReady(nc *queue.Conn) ReadyFunc {
	return func() error { return queue.ConnReady(nc) }
}

// Healthz answers "ok": the process is up and serving.
func Healthz(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) }

// Route adds GET /metrics and /readyz to mux (/healthz is the caller's:
// Healthz, or its own). /readyz answers 503 with the reason of the first
// ReadyFunc that fails.
func Route(mux *http.ServeMux, reg prometheus.Gatherer, ready ...ReadyFunc) {
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		for _, f := range ready {
			if err := f(); err != nil {
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = fmt.Fprintf(w, "not ready: %v\n", err)
				return
			}
		}
		_, _ = w.Write([]byte("ready\n"))
	})
}

// Server serves a handler on its own listener until Shutdown.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// Listen starts serving h on addr ("HOST:PORT"); log receives a serve error.
func Listen(addr string, h http.Handler, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	s := &Server{srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}, ln: ln, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "err", err)
		}
	}()
	return s, nil
}

// Addr is the address served.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Shutdown stops the server and waits for it, bounded by ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	<-s.done
	return err
}
