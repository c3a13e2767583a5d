package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// EmbeddedConfig configures [StartEmbedded].
type EmbeddedConfig struct {
	// Host is the client listen address. Default 127.0.0.1.
	Host string
	// Port is the client port. Default 4222; -1 picks a random free port.
	Port int
	// DataDir is required; JetStream stores its data in DataDir/jetstream.
	DataDir string
	// User and Password, when set, are required of every client.
	User, Password string
	// TLSCert and TLSKey, PEM files, make the server require TLS of every
	// client connecting over the network. Clients in this process connect
	// through [Embedded.Server] (queue.ConnConfig.InProcess) without it.
	TLSCert, TLSKey string
	// MaxStore is the most JetStream stores on disk, in bytes. Default
	// 75% of the disk space free at start plus what the store holds
	// already (nats-server's own default counts only the free space, so
	// it would shrink at every restart as the store grows).
	MaxStore int64
	// Logger receives the server's log: notices, debug and trace lines at
	// debug level, warnings at warn, errors at error. Default slog.Default().
	Logger *slog.Logger
}

// Embedded is a nats-server with JetStream running in this process.
type Embedded struct {
	srv  *server.Server
	once sync.Once
}

// embeddedReadyTimeout bounds how long StartEmbedded waits for the server.
const embeddedReadyTimeout = 10 * time.Second

// ErrEmbeddedNotReady is returned by [StartEmbedded] when the server does not
// accept connections in time.
var ErrEmbeddedNotReady = errors.New("queue: embedded nats-server not ready")

// StartEmbedded starts an in-process nats-server with JetStream enabled and
// waits until it accepts client connections.
func StartEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("start embedded nats-server: DataDir is required")
	}
	host := cfg.Host
	if host == "" {
		host = "127.0.0.1"
	}
	port := cfg.Port
	if port == 0 {
		port = 4222
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	opts := &server.Options{
		ServerName: "taskwire-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		// nats-server keeps JetStream data in StoreDir/jetstream.
		StoreDir: cfg.DataDir,
		Username: cfg.User,
		Password: cfg.Password,
		NoSigs:   true,
	}
	if cfg.MaxStore > 0 {
		opts.JetStreamMaxStore = cfg.MaxStore
	} else if ms := defaultMaxStore(cfg.DataDir); ms > 0 {
		opts.JetStreamMaxStore = ms
	}
	if cfg.TLSCert != "" || cfg.TLSKey != "" {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey})
		if err != nil {
			return nil, fmt.Errorf("start embedded nats-server: tls: %w", err)
		}
		opts.TLSConfig, opts.TLS, opts.TLSTimeout = tc, true, 2
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("start embedded nats-server: %w", err)
	}
	debug := log.Enabled(context.Background(), slog.LevelDebug)
	srv.SetLoggerV2(serverLogger{log: log.With("component", "nats-server")}, debug, false, false)
	srv.Start()
	if !srv.ReadyForConnections(embeddedReadyTimeout) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("start embedded nats-server on %s:%d: %w", host, port, ErrEmbeddedNotReady)
	}
	log.Info("embedded nats-server started", "url", srv.ClientURL(), "store_dir", srv.StoreDir(), "tls", opts.TLS)
	return &Embedded{srv: srv}, nil
}

// ClientURL is the URL clients connect to.
func (e *Embedded) ClientURL() string { return e.srv.ClientURL() }

// MaxStore is the most JetStream stores on disk, in bytes.
func (e *Embedded) MaxStore() int64 { return e.srv.JetStreamConfig().MaxStore }

// Server is the underlying nats-server.
func (e *Embedded) Server() *server.Server { return e.srv }

// Shutdown stops the server and waits until it has shut down. It is
// idempotent.
func (e *Embedded) Shutdown() {
	e.once.Do(func() {
		e.srv.Shutdown()
		e.srv.WaitForShutdown()
	})
}

// serverLogger adapts slog to server.Logger.
type serverLogger struct{ log *slog.Logger }

var _ server.Logger = serverLogger{}

func (l serverLogger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l serverLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l serverLogger) Fatalf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l serverLogger) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l serverLogger) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l serverLogger) Tracef(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
