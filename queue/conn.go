package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// ConnConfig configures [Connect]. The zero value connects to
// nats.DefaultURL without authentication.
type ConnConfig struct {
	// URL is one or more NATS server URLs, comma separated.
	// Default nats://127.0.0.1:4222.
	URL string
	// User and Password authenticate with a user name and password.
	User, Password string
	// CredsFile is a NATS credentials (JWT + nkey) file.
	CredsFile string
	// TLSCA is a PEM file of root CAs used to verify the server.
	TLSCA string
	// TLSCert and TLSKey are a PEM client certificate and key.
	TLSCert, TLSKey string
	// InboxPrefix replaces "_INBOX" as the prefix of the subjects replies
	// come back on, so NATS permissions can give each user its own inboxes
	// (subscribe "PREFIX.>") instead of every client's ("_INBOX.>").
	InboxPrefix string
	// InProcess, when set, connects to a server of this process (an
	// [Embedded]'s Server) without the network, and so without TLS.
	InProcess nats.InProcessConnProvider
	// Name is the connection name shown in server monitoring.
	Name string
	// Logger receives connection events. Default slog.Default().
	Logger *slog.Logger
}

// connectTimeoutDefault bounds each dial and handshake of a (re)connect.
const connectTimeoutDefault = 2 * time.Second

// Connect dials NATS. Once connected it reconnects forever, logging
// disconnects and reconnects. The first connect is not retried: it fails
// fast when no server is reachable, and it gives up when ctx is done.
func Connect(ctx context.Context, cfg ConnConfig) (*nats.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("connect nats: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	url := cfg.URL
	if url == "" {
		url = nats.DefaultURL
	}
	dialer := &ctxDialer{ctx: ctx, d: net.Dialer{Timeout: connectTimeoutDefault}}
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(false),
		nats.Timeout(connectTimeoutDefault),
		nats.SetCustomDialer(dialer),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "url", nc.ConnectedUrlRedacted(), "err", err)
				return
			}
			log.Info("nats disconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			log.Debug("nats connection closed")
		}),
		nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
			if sub != nil {
				log.Warn("nats async error", "subject", sub.Subject, "err", err)
				return
			}
			log.Warn("nats async error", "err", err)
		}),
	}
	if cfg.User != "" || cfg.Password != "" {
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	}
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if cfg.InProcess != nil {
		opts = append(opts, nats.InProcessServer(cfg.InProcess))
	}
	if cfg.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(cfg.InboxPrefix))
	}
	if cfg.TLSCA != "" {
		opts = append(opts, nats.RootCAs(cfg.TLSCA))
	}
	if cfg.TLSCert != "" || cfg.TLSKey != "" {
		opts = append(opts, nats.ClientCert(cfg.TLSCert, cfg.TLSKey))
	}
	nc, err := nats.Connect(url, opts...)
	dialer.release()
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			err = fmt.Errorf("%w (%w)", ctxErr, err)
		}
		return nil, fmt.Errorf("connect nats %s: %w", redactURL(url), err)
	}
	log.Info("nats connected", "url", nc.ConnectedUrlRedacted(), "name", cfg.Name)
	return nc, nil
}

// ctxDialer dials with the caller's context during the first connect and
// with only the dial timeout afterwards (reconnects outlive that context).
type ctxDialer struct {
	mu  sync.Mutex
	ctx context.Context
	d   net.Dialer
}

func (d *ctxDialer) Dial(network, address string) (net.Conn, error) {
	d.mu.Lock()
	ctx := d.ctx
	d.mu.Unlock()
	if ctx == nil {
		ctx = context.Background()
	}
	return d.d.DialContext(ctx, network, address)
}

func (d *ctxDialer) release() {
	d.mu.Lock()
	d.ctx = nil
	d.mu.Unlock()
}

// redactURL hides any user info in a (comma separated) URL for error text.
func redactURL(urls string) string {
	parts := strings.Split(urls, ",")
	for i, u := range parts {
		scheme := strings.Index(u, "://")
		at := strings.LastIndexByte(u, '@')
		if scheme >= 0 && at > scheme {
			parts[i] = u[:scheme+3] + "redacted" + u[at:]
		}
	}
	return strings.Join(parts, ",")
}
