// Command triggerer runs the triggers of deferred taskwire tasks: it claims
// triggers up to its capacity, runs each until it fires, and publishes the
// event that resumes its task. Run several for high availability. Every
// flag falls back to the TASKWIRE_* environment variable named in its help;
// see -h.
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
	"github.com/taskwire/taskwire/triggerer"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "triggerer:", err)
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
	nc, err := queue.ConnectRetry(ctx, o.nats.Conn("taskwire-triggerer", log), o.nats.ConnectTimeout)
	if err != nil {
		if ctx.Err() != nil {
			log.Info("stopped before NATS could be reached", "err", err)
			return nil
		}
		return err
	}
	defer nc.Close()
	qc, err := queue.New(ctx, nc, queue.Config{Logger: log, Bind: true})
	if err != nil {
		return err
	}
	if o.apiURL != "" {
		tc, err := flagenv.ClientTLS(o.apiCA)
		if err != nil {
			return err
		}
		if o.cfg.API, err = execution.NewClient(execution.ClientConfig{URL: o.apiURL, TLSConfig: tc, Logger: log}); err != nil {
			return err
		}
	}
	reg := telemetry.NewRegistry(nc)
	o.cfg.Queue, o.cfg.Logger, o.cfg.Metrics = qc, log, triggerer.NewMetrics(reg)
	tr, err := triggerer.New(o.cfg)
	if err != nil {
		return err
	}

	var (
		srv     *telemetry.Server
		started atomic.Bool
	)
	if o.listen != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "ok: %s holds %d triggers\n", tr.ID(), tr.Held())
		})
		telemetry.Route(mux, reg, telemetry.NATSReady(nc), func() error {
			if !started.Load() {
				return errors.New("triggerer not started")
			}
			return nil
		})
		if srv, err = telemetry.Listen(o.listen, mux, log); err != nil {
			return err
		}
		log.Info("serving metrics", "listen", srv.Addr())
	}
	if err := tr.Start(ctx); err != nil {
		if srv != nil {
			_ = srv.Shutdown(context.Background())
		}
		return err
	}
	started.Store(true)
	o.logEffective(tr.ID())
	// Say how many triggers are held when it changes.
	t := time.NewTicker(o.cfg.HeartbeatInterval)
	last := -1
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-t.C:
			if n := tr.Held(); n != last {
				log.Info("triggers held", "held", n, "capacity", o.cfg.Capacity)
				last = n
			}
		}
	}
	t.Stop()
	log.Info("shutting down: handing triggers back")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = tr.Stop(sctx)
	if srv != nil {
		_ = srv.Shutdown(sctx)
	}
	return err
}
