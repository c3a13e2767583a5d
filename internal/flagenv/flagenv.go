// Package flagenv is what taskwire's binaries share on their command line:
// flags that fall back to TASKWIRE_* environment variables (so that
// docker-compose can configure them), the NATS connection flags, and the
// log flags.
package flagenv

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/taskwire/taskwire/queue"
)

// String returns the environment variable name's value, or def when unset.
func String(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

// Duration returns the environment variable name as a duration, or def
// when it is unset or not a duration.
func Duration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return d
	}
	return def
}

// Int returns the environment variable name as an integer, or def when it
// is unset or not an integer.
func Int(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return n
	}
	return def
}

// Bool returns the environment variable name as a boolean, or def when it
// is unset or not a boolean.
func Bool(name string, def bool) bool {
	if b, err := strconv.ParseBool(os.Getenv(name)); err == nil {
		return b
	}
	return def
}

// NATS holds the NATS connection flags.
type NATS struct {
	URL, User, Password, Creds, CA, Cert, Key, Inbox string
}

// Register adds --nats-url (default defURL), --nats-user, --nats-password,
// --nats-creds, --nats-tls-ca, --nats-tls-cert, --nats-tls-key and
// --nats-inbox-prefix to fs, each falling back to its TASKWIRE_NATS_*
// variable. urlHelp describes
// --nats-url.
func (n *NATS) Register(fs *flag.FlagSet, defURL, urlHelp string) {
	fs.StringVar(&n.URL, "nats-url", String("TASKWIRE_NATS_URL", defURL), urlHelp+" (TASKWIRE_NATS_URL)")
	fs.StringVar(&n.User, "nats-user", String("TASKWIRE_NATS_USER", ""), "NATS user (TASKWIRE_NATS_USER)")
	fs.StringVar(&n.Password, "nats-password", String("TASKWIRE_NATS_PASSWORD", ""), "NATS password (TASKWIRE_NATS_PASSWORD)")
	fs.StringVar(&n.Creds, "nats-creds", String("TASKWIRE_NATS_CREDS", ""), "NATS creds file (TASKWIRE_NATS_CREDS)")
	fs.StringVar(&n.CA, "nats-tls-ca", String("TASKWIRE_NATS_TLS_CA", ""), "NATS TLS CA file (TASKWIRE_NATS_TLS_CA)")
	fs.StringVar(&n.Cert, "nats-tls-cert", String("TASKWIRE_NATS_TLS_CERT", ""), "NATS TLS client cert (TASKWIRE_NATS_TLS_CERT)")
	fs.StringVar(&n.Key, "nats-tls-key", String("TASKWIRE_NATS_TLS_KEY", ""), "NATS TLS client key (TASKWIRE_NATS_TLS_KEY)")
	fs.StringVar(&n.Inbox, "nats-inbox-prefix", String("TASKWIRE_NATS_INBOX_PREFIX", ""), "prefix of reply subjects instead of _INBOX, for per-user NATS permissions (TASKWIRE_NATS_INBOX_PREFIX)")
}

// Conn is the connection configuration the flags give, for queue.Connect.
func (n NATS) Conn(name string, log *slog.Logger) queue.ConnConfig {
	return queue.ConnConfig{URL: n.URL, User: n.User, Password: n.Password, CredsFile: n.Creds,
		TLSCA: n.CA, TLSCert: n.Cert, TLSKey: n.Key, InboxPrefix: n.Inbox, Name: name, Logger: log}
}

// LogAttrs describes the flags for a log line, without secrets.
func (n NATS) LogAttrs() []any {
	return []any{"nats_url", n.URL, "nats_user", n.User, "nats_password", n.Password != "",
		"nats_creds", n.Creds, "nats_tls", n.CA != "" || n.Cert != "", "nats_inbox_prefix", n.Inbox}
}

// ClientTLS returns a TLS configuration trusting the CA certificates of the
// PEM file caFile, for an https API whose certificate a private CA signed;
// nil (the system's roots) when caFile is empty.
func ClientTLS(caFile string) (*tls.Config, error) {
	if caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s: no PEM certificate in it", caFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// Log holds the log flags.
type Log struct{ Level, Format string }

// Register adds --log-level and --log-format to fs.
func (l *Log) Register(fs *flag.FlagSet) {
	fs.StringVar(&l.Level, "log-level", String("TASKWIRE_LOG_LEVEL", "info"), "debug, info, warn or error (TASKWIRE_LOG_LEVEL)")
	fs.StringVar(&l.Format, "log-format", String("TASKWIRE_LOG_FORMAT", "text"), "text or json (TASKWIRE_LOG_FORMAT)")
}

// Logger makes the process's logger, writing to stderr.
func (l Log) Logger() (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(l.Level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", l.Level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch l.Format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", l.Format)
}
