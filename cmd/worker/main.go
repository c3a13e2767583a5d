// Command worker pulls activities from taskwire queues and supervises their
// tasks. Every flag falls back to the TASKWIRE_* environment variable named
// in its help; see -h.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/taskwire/taskwire/execution"
	"github.com/taskwire/taskwire/internal/flagenv"
	"github.com/taskwire/taskwire/internal/telemetry"
	"github.com/taskwire/taskwire/queue"
	"github.com/taskwire/taskwire/worker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "worker:", err)
		}
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	log := o.log
	nc, err := queue.ConnectRetry(ctx, o.nats.Conn("taskwire-worker", log), o.nats.ConnectTimeout)
	if err != nil {
		if ctx.Err() != nil {
			log.Info("stopped before NATS could be reached", "err", err)
			return nil
		}
		return err
	}
	// Phase 4 of shutdown: drain the connection (flushes log lines).
	defer queue.Drain(nc, 10*time.Second)
	qc, err := queue.New(ctx, nc, queue.Config{Logger: log, Bind: true})
	if err != nil {
		return err
	}
	tc, err := flagenv.ClientTLS(o.apiCA)
	if err != nil {
		return fmt.Errorf("--api-ca: %w", err)
	}
	api, err := execution.NewClient(execution.ClientConfig{URL: o.apiURL, TLSConfig: tc, Logger: log})
	if err != nil {
		return err
	}
	reg := telemetry.NewRegistry(nc)
	o.cfg.Queue, o.cfg.API, o.cfg.Logger, o.cfg.Metrics = qc, api, log, worker.NewMetrics(reg)
	w, err := worker.New(o.cfg)
	if err != nil {
		return err
	}
	reg.MustRegister(w.RunningGauge(), w.WarmCollector())
	var started atomic.Bool
	if o.listen != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("GET /healthz", telemetry.Healthz)
		telemetry.Route(mux, reg, telemetry.NATSReady(nc), func() error {
			if !started.Load() {
				return errors.New("worker not started")
			}
			if w.Draining() {
				return errors.New("worker draining")
			}
			if !w.APIReachable() {
				return errors.New("execution API unreachable: not pulling")
			}
			return nil
		})
		srv, err := telemetry.Listen(o.listen, mux, log)
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
		log.Info("serving metrics", "listen", srv.Addr())
	}
	if err := w.Start(ctx); err != nil {
		return err
	}
	started.Store(true)
	o.logEffective(w.ID())
	<-ctx.Done()
	log.Info("shutting down", "grace_period", o.cfg.GracePeriod)
	sctx, cancel := context.WithTimeout(context.Background(), o.cfg.GracePeriod+2*o.cfg.KillGrace+worker.ReportTimeoutDefault)
	defer cancel()
	return w.Stop(sctx)
}
