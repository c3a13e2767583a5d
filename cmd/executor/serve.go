package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/taskwire/taskwire/executor"
	"github.com/taskwire/taskwire/internal/flagenv"
	"github.com/taskwire/taskwire/queue"
)

const serveUsage = `usage: executor serve [flags]

Runs the executor. With no --nats-url it embeds a NATS server with JetStream
(file storage under --data-dir), reachable by workers at --nats-listen.
Every flag falls back to the TASKWIRE_* environment variable named in its help.
`

func serveCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), serveUsage); fs.PrintDefaults() }
	var (
		dataDir       = fs.String("data-dir", flagenv.String("TASKWIRE_DATA_DIR", "taskwire-data"), "embedded NATS data directory (TASKWIRE_DATA_DIR)")
		listen        = fs.String("listen", flagenv.String("TASKWIRE_LISTEN", "127.0.0.1:8080"), "HTTP listen address of the APIs (TASKWIRE_LISTEN)")
		natsListen    = fs.String("nats-listen", flagenv.String("TASKWIRE_NATS_LISTEN", "127.0.0.1:4222"), "embedded NATS listen address (TASKWIRE_NATS_LISTEN)")
		replicas      = fs.Int("replicas", flagenv.Int("TASKWIRE_REPLICAS", 1), "stream and KV replicas, 3 on a NATS cluster (TASKWIRE_REPLICAS)")
		operatorToken = fs.String("operator-token", flagenv.String("TASKWIRE_OPERATOR_TOKEN", ""), "bearer token required on /api/ (TASKWIRE_OPERATOR_TOKEN)")
		keyFile       = fs.String("signing-key-file", flagenv.String("TASKWIRE_SIGNING_KEY_FILE", ""), "file with the task-token signing key, ≥ 32 bytes; default a key shared through NATS (TASKWIRE_SIGNING_KEY_FILE)")
		zombie        = fs.Duration("zombie-threshold", flagenv.Duration("TASKWIRE_ZOMBIE_THRESHOLD", executor.ZombieThresholdDefault), "a running task with no heartbeat this long is a zombie (TASKWIRE_ZOMBIE_THRESHOLD)")
		scan          = fs.Duration("scan-interval", flagenv.Duration("TASKWIRE_SCAN_INTERVAL", executor.ScanIntervalDefault), "how often zombies and timeouts are looked for (TASKWIRE_SCAN_INTERVAL)")
		ackWait       = fs.Duration("activity-ack-wait", flagenv.Duration("TASKWIRE_ACTIVITY_ACK_WAIT", 30*time.Second), "redelivery delay of an activity no worker accepted (TASKWIRE_ACTIVITY_ACK_WAIT)")
	)
	var (
		natsFlags flagenv.NATS
		logFlags  flagenv.Log
	)
	natsFlags.Register(fs, "", "external NATS URL; empty embeds a server")
	logFlags.Register(fs)
	if err := fs.Parse(args); err != nil {
		return usageErr(err)
	}
	log, err := logFlags.Logger()
	if err != nil {
		return usageErr(err)
	}
	var key []byte
	if *keyFile != "" {
		if key, err = os.ReadFile(*keyFile); err != nil {
			return fmt.Errorf("read signing key: %w", err)
		}
		key = []byte(strings.TrimSpace(string(key)))
	}

	url := natsFlags.URL
	if url == "" {
		host, portS, err := net.SplitHostPort(*natsListen)
		if err != nil {
			return usageErr(fmt.Errorf("--nats-listen %q: %w", *natsListen, err))
		}
		port, err := strconv.Atoi(portS)
		if err != nil {
			return usageErr(fmt.Errorf("--nats-listen %q: bad port", *natsListen))
		}
		emb, err := queue.StartEmbedded(queue.EmbeddedConfig{
			Host: host, Port: port, DataDir: filepath.Clean(*dataDir),
			User: natsFlags.User, Password: natsFlags.Password, Logger: log.With("component", "nats"),
		})
		if err != nil {
			return fmt.Errorf("start embedded nats: %w", err)
		}
		defer emb.Shutdown()
		url = emb.ClientURL()
		log.Info("embedded NATS started", "url", url, "data_dir", *dataDir)
	}
	natsFlags.URL = url
	nc, err := queue.Connect(ctx, natsFlags.Conn("taskwire-executor", log))
	if err != nil {
		return err
	}
	defer nc.Close()
	qc, err := queue.New(ctx, nc, queue.Config{Replicas: *replicas, ActivityAckWait: *ackWait, Logger: log})
	if err != nil {
		return err
	}
	ex, err := executor.New(executor.Config{
		Queue: qc, SigningKey: key, OperatorToken: *operatorToken,
		ZombieThreshold: *zombie, ScanInterval: *scan, Logger: log,
	})
	if err != nil {
		return usageErr(err)
	}
	if err := ex.Start(ctx); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		_ = ex.Stop(context.Background())
		return fmt.Errorf("listen %s: %w", *listen, err)
	}
	srv := &http.Server{Handler: ex.Handler(), ReadHeaderTimeout: 10 * time.Second}
	log.Info("executor serving", "listen", ln.Addr().String(), "nats_url", url, "replicas", *replicas,
		"zombie_threshold", *zombie, "operator_token", *operatorToken != "")

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		log.Info("executor stopping")
		herr := srv.Shutdown(sctx)
		return errors.Join(herr, ex.Stop(sctx))
	})
	err = g.Wait()
	if derr := nc.Drain(); derr != nil && !errors.Is(derr, context.Canceled) {
		log.Debug("drain nats", "err", derr)
	}
	return err
}
