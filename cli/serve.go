package cli

import (
	"cmp"
	"context"
	"crypto/tls"
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
	"github.com/taskwire/taskwire/internal/telemetry"
	"github.com/taskwire/taskwire/queue"
)

const serveUsage = `usage: executor serve [flags]

Runs the executor. With no --nats-url it embeds a NATS server with JetStream
(file storage under --data-dir), reachable by workers at --nats-listen.
Every flag falls back to the TASKWIRE_* environment variable named in its help.
`

// readKeyFile reads a key file (its content trimmed of surrounding
// space); nil when path is empty.
func readKeyFile(path, what string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	b = []byte(strings.TrimSpace(string(b)))
	if len(b) < 32 {
		return nil, usageErr(fmt.Errorf("%s file %s: want at least 32 bytes, got %d", what, path, len(b)))
	}
	return b, nil
}

func serveCmd(ctx context.Context, args []string, lookupEnv func(string) (string, bool)) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), serveUsage); fs.PrintDefaults() }
	var (
		dataDir       = fs.String("data-dir", "taskwire-data", "embedded NATS data directory (TASKWIRE_DATA_DIR)")
		listen        = fs.String("listen", "127.0.0.1:8080", "HTTP listen address of the APIs (TASKWIRE_LISTEN)")
		natsTLSCert   = fs.String("nats-listen-tls-cert", "", "PEM certificate making the embedded NATS require TLS of its clients; with --nats-listen-tls-key (TASKWIRE_NATS_LISTEN_TLS_CERT)")
		natsTLSKey    = fs.String("nats-listen-tls-key", "", "PEM private key of --nats-listen-tls-cert (TASKWIRE_NATS_LISTEN_TLS_KEY)")
		natsListen    = fs.String("nats-listen", "127.0.0.1:4222", "embedded NATS listen address (TASKWIRE_NATS_LISTEN)")
		replicas      = fs.Int("replicas", 1, "stream and KV replicas, 3 on a NATS cluster (TASKWIRE_REPLICAS)")
		operatorToken = fs.String("operator-token", "", "bearer token required on /api/ (TASKWIRE_OPERATOR_TOKEN)")
		keyFile       = fs.String("signing-key-file", "", "file with the task-token signing key, ≥ 32 bytes; default a key shared through NATS (TASKWIRE_SIGNING_KEY_FILE)")
		zombie        = fs.Duration("zombie-threshold", executor.ZombieThresholdDefault, "a running task with no heartbeat this long is a zombie (TASKWIRE_ZOMBIE_THRESHOLD)")
		scan          = fs.Duration("scan-interval", executor.ScanIntervalDefault, "how often zombies and timeouts are looked for (TASKWIRE_SCAN_INTERVAL)")
		secretFile    = fs.String("secret-key-file", "", "file with the key sealing connections and variables at rest, ≥ 32 bytes; default a key shared through NATS (TASKWIRE_SECRET_KEY_FILE)")
		execTTL       = fs.Duration("execution-token-ttl", executor.ExecutionTokenTTLDefault, "life of a task try's execution token, refreshed on heartbeats when half spent (TASKWIRE_EXECUTION_TOKEN_TTL)")
		tlsCert       = fs.String("tls-cert", "", "PEM certificate (chain) to serve the APIs over https; with --tls-key (TASKWIRE_TLS_CERT)")
		tlsKey        = fs.String("tls-key", "", "PEM private key of --tls-cert (TASKWIRE_TLS_KEY)")
		lostAfter     = fs.Duration("lost-after", executor.LostAfterDefault, "a worker or triggerer silent this long is shown as lost (TASKWIRE_LOST_AFTER)")
		ackWait       = fs.Duration("activity-ack-wait", queue.ActivityAckWaitDefault, "redelivery delay of an activity no worker accepted (TASKWIRE_ACTIVITY_ACK_WAIT)")
	)
	lf := registerLimitFlags(fs)
	minFreeFlag := fs.Int64("min-free-disk", 0, "bytes kept free on the embedded NATS's disk: below it new work is refused (507) until space is freed; 0: 2% of the disk, 16 MiB to 1 GiB (TASKWIRE_MIN_FREE_DISK)")
	retention := fs.Duration("record-retention", executor.RecordRetentionDefault, "finished task-instance records are exported and deleted this long after their last change; negative keeps them all (TASKWIRE_RECORD_RETENTION)")
	exportDir := fs.String("record-export-dir", "", "directory receiving each record before its deletion, as JSON lines; default DATA_DIR/exports (TASKWIRE_RECORD_EXPORT_DIR)")
	retentionInterval := fs.Duration("retention-interval", executor.RetentionIntervalDefault, "how often old records are looked for (TASKWIRE_RETENTION_INTERVAL)")
	recordCache := fs.Int("record-cache", executor.RecordCacheDefault, "finished task-instance records kept in memory (the most recently used); older ones are read from storage (TASKWIRE_RECORD_CACHE)")
	insecure := fs.Bool("insecure", false, "serve off loopback without an operator token or NATS authentication (TASKWIRE_INSECURE)")
	var (
		natsFlags flagenv.NATS
		logFlags  flagenv.Log
	)
	natsFlags.Register(fs, "", "external NATS URL; empty embeds a server")
	logFlags.Register(fs)
	if err := flagenv.Parse(fs, args, lookupEnv); err != nil {
		return usageErr(err)
	}
	log, err := logFlags.Logger()
	if err != nil {
		return usageErr(err)
	}
	exp := exposure{listen: *listen, natsListen: *natsListen, operatorToken: *operatorToken != "",
		embedded: natsFlags.URL == "", natsUser: natsFlags.User != "" && natsFlags.Password != ""}
	warnings := exp.problems()
	if len(warnings) > 0 && !*insecure {
		return usageErr(fmt.Errorf("refusing to start: %s. Run \"executor init --dir DIR\" for a token and NATS credentials, or give --insecure to serve open anyway",
			strings.Join(warnings, "; ")))
	}
	for _, w := range warnings {
		log.Warn("insecure setup (--insecure)", "problem", w)
	}
	key, err := readKeyFile(*keyFile, "signing key")
	if err != nil {
		return err
	}
	secret, err := readKeyFile(*secretFile, "secret key")
	if err != nil {
		return err
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		return usageErr(errors.New("--tls-cert and --tls-key go together"))
	}
	var tlsConfig *tls.Config
	if *tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			return fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}

	url := natsFlags.URL
	var inProcess queue.InProcessServer
	var storageCheck func() error
	if url == "" {
		if (*natsTLSCert == "") != (*natsTLSKey == "") {
			return usageErr(errors.New("--nats-listen-tls-cert and --nats-listen-tls-key go together"))
		}
		host, portS, err := net.SplitHostPort(*natsListen)
		if err != nil {
			return usageErr(fmt.Errorf("--nats-listen %q: %w", *natsListen, err))
		}
		port, err := strconv.Atoi(portS)
		if err != nil {
			return usageErr(fmt.Errorf("--nats-listen %q: bad port", *natsListen))
		}
		emb, err := queue.StartEmbedded(queue.EmbeddedConfig{
			MaxStore: lf.budget,
			Host:     host, Port: port, DataDir: filepath.Clean(*dataDir),
			User: natsFlags.User, Password: natsFlags.Password, TLSCert: *natsTLSCert, TLSKey: *natsTLSKey,
			Logger: log.With("component", "nats"),
		})
		if err != nil {
			return fmt.Errorf("start embedded nats: %w", err)
		}
		defer emb.Shutdown()
		url, inProcess = emb.ClientURL(), emb.Server()
		if lf.budget <= 0 {
			lf.budget = emb.MaxStore()
		}
		minFree := *minFreeFlag
		storageCheck = func() error { return emb.CheckDisk(minFree) }
		log.Info("embedded NATS started", "url", url, "data_dir", *dataDir)
	}
	natsFlags.URL = url
	connCfg := natsFlags.Conn("taskwire-executor", log)
	if inProcess != nil {
		// In process there is no TLS to speak: a tls:// URL would ask for it.
		connCfg.InProcess, connCfg.URL = inProcess, strings.Replace(url, "tls://", "nats://", 1)
	}
	nc, err := queue.Connect(ctx, connCfg)
	if err != nil {
		return err
	}
	defer nc.Close()
	qc, err := queue.New(ctx, nc, queue.Config{Replicas: *replicas, ActivityAckWait: *ackWait, Limits: lf.limits(), Logger: log})
	if err != nil {
		return err
	}
	logLimits(log, qc.EffectiveLimits())
	reg := telemetry.NewRegistry(nc)
	ex, err := executor.New(executor.Config{
		Queue: qc, SigningKey: key, SecretKey: secret, OperatorToken: *operatorToken,
		ExecutionTokenTTL: *execTTL, ZombieThreshold: *zombie, ScanInterval: *scan, LostAfter: *lostAfter,
		RecordRetention: *retention, RecordExportDir: cmp.Or(*exportDir, filepath.Join(*dataDir, "exports")), RetentionInterval: *retentionInterval,
		RecordCache: *recordCache, StorageCheck: storageCheck, Metrics: executor.NewMetrics(reg), Logger: log,
	})
	if err != nil {
		return usageErr(err)
	}
	if err := ex.Start(ctx); err != nil {
		return err
	}
	if err := applyTestHooks(ex, log); err != nil {
		_ = ex.Stop(context.Background())
		return usageErr(err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		_ = ex.Stop(context.Background())
		return fmt.Errorf("listen %s: %w", *listen, err)
	}
	// /metrics and /readyz beside the APIs (and the executor's /healthz),
	// outside /api/: no operator token, as Prometheus scrapes them.
	mux := http.NewServeMux()
	telemetry.RouteWarning(mux, reg, warnings, ex.Ready, ex.StorageReady)
	mux.Handle("/", ex.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: executor.HTTPReadHeaderTimeout, IdleTimeout: executor.HTTPIdleTimeout, TLSConfig: tlsConfig}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	log.Info("executor serving", "listen", ln.Addr().String(), "https", tlsConfig != nil, "nats_url", url, "replicas", *replicas,
		"zombie_threshold", *zombie, "lost_after", *lostAfter, "execution_token_ttl", *execTTL, "operator_token", *operatorToken != "",
		"signing_key_file", *keyFile != "", "secret_key_file", *secretFile != "")

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
