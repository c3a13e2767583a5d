// Package flagenv is what taskwire's binaries share on their command line:
// flags that fall back to the TASKWIRE_* environment variable their help
// names (so that docker-compose can configure them; see Parse), the NATS
// connection flags, and the log flags.
package flagenv

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"time"

	"github.com/taskwire/taskwire/internal/logstorm"
	"github.com/taskwire/taskwire/queue"
)

// envNameRE finds the environment variable a flag falls back to: its help
// names it in parentheses, so the help and the binding cannot disagree.
var envNameRE = regexp.MustCompile(`\((TASKWIRE_[A-Z0-9_]+)\)`)

// Parse parses args into fs, then applies the environment (see Apply) to
// the flags not given on the command line. lookupEnv is os.LookupEnv
// outside tests. It is the one way taskwire's binaries read flags.
func Parse(fs *flag.FlagSet, args []string, lookupEnv func(string) (string, bool)) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	return Apply(fs, Given(fs), lookupEnv)
}

// Given is the set of flags of fs set on the command line.
func Given(fs *flag.FlagSet) map[string]bool {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	return given
}

// Apply sets every flag of fs not in given whose help names a TASKWIRE_*
// variable, as "(TASKWIRE_X)", from that variable when it is set and not
// empty: the command line wins over the environment, the environment over
// the built-in default. A value the flag refuses (TASKWIRE_GRACE_PERIOD=abc)
// is an error naming the variable, its value and the flag, never a silent
// fall back to the default.
func Apply(fs *flag.FlagSet, given map[string]bool, lookupEnv func(string) (string, bool)) error {
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		m := envNameRE.FindStringSubmatch(f.Usage)
		if m == nil || given[f.Name] {
			return
		}
		v, ok := lookupEnv(m[1])
		if !ok || v == "" {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			if f.DefValue != "" {
				err = fmt.Errorf("%w; want a value like the default, %q", err, f.DefValue)
			}
			errs = append(errs, fmt.Errorf("%s=%q (for --%s): %w", m[1], v, f.Name, err))
		}
	})
	return errors.Join(errs...)
}

// NATS holds the NATS connection flags.
type NATS struct {
	URL, User, Password, Creds, CA, Cert, Key, Inbox string
	// ConnectTimeout bounds the retries of the first connect (see
	// RegisterConnectTimeout); 0 retries until stopped.
	ConnectTimeout time.Duration
}

// RegisterConnectTimeout adds --connect-timeout to fs, for the services
// that wait for NATS at start (queue.ConnectRetry).
func (n *NATS) RegisterConnectTimeout(fs *flag.FlagSet) {
	fs.DurationVar(&n.ConnectTimeout, "connect-timeout", 0, "at start, how long to keep retrying while NATS is unreachable before exiting; 0 retries until stopped (TASKWIRE_CONNECT_TIMEOUT)")
}

// Register adds --nats-url (default defURL), --nats-user, --nats-password,
// --nats-creds, --nats-tls-ca, --nats-tls-cert, --nats-tls-key and
// --nats-inbox-prefix to fs, each falling back to its TASKWIRE_NATS_*
// variable. urlHelp describes
// --nats-url.
func (n *NATS) Register(fs *flag.FlagSet, defURL, urlHelp string) {
	fs.StringVar(&n.URL, "nats-url", defURL, urlHelp+" (TASKWIRE_NATS_URL)")
	fs.StringVar(&n.User, "nats-user", "", "NATS user (TASKWIRE_NATS_USER)")
	fs.StringVar(&n.Password, "nats-password", "", "NATS password (TASKWIRE_NATS_PASSWORD)")
	fs.StringVar(&n.Creds, "nats-creds", "", "NATS creds file (TASKWIRE_NATS_CREDS)")
	fs.StringVar(&n.CA, "nats-tls-ca", "", "NATS TLS CA file (TASKWIRE_NATS_TLS_CA)")
	fs.StringVar(&n.Cert, "nats-tls-cert", "", "NATS TLS client cert (TASKWIRE_NATS_TLS_CERT)")
	fs.StringVar(&n.Key, "nats-tls-key", "", "NATS TLS client key (TASKWIRE_NATS_TLS_KEY)")
	fs.StringVar(&n.Inbox, "nats-inbox-prefix", "", "prefix of reply subjects instead of _INBOX, for per-user NATS permissions (TASKWIRE_NATS_INBOX_PREFIX)")
}

// Conn is the connection configuration the flags give, for queue.Connect.
func (n NATS) Conn(name string, log *slog.Logger) queue.ConnConfig {
	return queue.ConnConfig{URL: n.URL, User: n.User, Password: n.Password, CredsFile: n.Creds,
		TLSCA: n.CA, TLSCert: n.Cert, TLSKey: n.Key, InboxPrefix: n.Inbox, Name: name, Logger: log}
}

// LogAttrs describes the flags for a log line, without secrets.
func (n NATS) LogAttrs() []any {
	return []any{"nats_url", n.URL, "nats_user", n.User, "nats_password", n.Password != "",
		"nats_creds", n.Creds, "nats_tls", n.CA != "" || n.Cert != "", "nats_inbox_prefix", n.Inbox, "connect_timeout", n.ConnectTimeout}
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
	fs.StringVar(&l.Level, "log-level", "info", "debug, info, warn or error (TASKWIRE_LOG_LEVEL)")
	fs.StringVar(&l.Format, "log-format", "text", "text or json (TASKWIRE_LOG_FORMAT)")
}

// Logger makes the process's logger, writing to stderr; warnings and
// errors of one message past logstorm.BurstDefault in
// logstorm.WindowDefault are counted, not written (package logstorm).
func (l Log) Logger() (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(l.Level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", l.Level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	switch l.Format {
	case "text":
		h = slog.NewTextHandler(os.Stderr, opts)
	case "json":
		h = slog.NewJSONHandler(os.Stderr, opts)
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", l.Format)
	}
	// A storm of one warning (an overloaded process timing out on every
	// call) is a few lines per window with a count, not a line per event.
	return slog.New(logstorm.New(h, logstorm.Config{})), nil
}
