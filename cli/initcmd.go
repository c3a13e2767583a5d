package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

const initUsage = `usage: executor init --dir DIR [--host HOST] [--force]

Writes, in one step, what an executor serving remote workers needs, so that
it starts secure off loopback:

  DIR/executor.env  the executor's settings: operator token, NATS user and
                    password of the embedded NATS, key files, and listen
                    addresses on every interface (8080 API, 4222 NATS)
  DIR/worker.env    a worker's settings: NATS URL, user and password, API URL
  DIR/cli.env       the operator CLI's settings: API URL and operator token
  DIR/signing-key, DIR/secret-key   the task-token and sealing keys

HOST is the name or address workers reach the executor at (default this
machine's hostname). Use them as:

  set -a; . DIR/executor.env; set +a; executor serve
  set -a; . DIR/worker.env; set +a; worker --queues default   (on each worker machine)
  set -a; . DIR/cli.env; set +a; executor workers

Every file is readable by its owner only; copy worker.env to the workers
over a secure channel. --force overwrites existing files.
`

func (c *cli) init(_ context.Context, args []string) error {
	flags := c.newFlagSet("init", initUsage)
	dir := flags.String("dir", "", "directory to write the files to (created if missing)")
	host := flags.String("host", "", "host name or address workers reach the executor at; default this machine's hostname")
	force := flags.Bool("force", false, "overwrite existing files")
	pos, _, err := c.parse(flags, args)
	if err != nil {
		return err
	}
	if err := wantArgs(flags, pos); err != nil {
		return err
	}
	if *dir == "" {
		return usagef("init: --dir is required")
	}
	if *host == "" {
		if *host, err = os.Hostname(); err != nil {
			return fmt.Errorf("init: hostname: %w (give --host)", err)
		}
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	secret := func() string {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		return hex.EncodeToString(b)
	}
	token, natsPassword := secret(), secret()
	const natsUser = "taskwire"
	signingKey, secretKey := filepath.Join(abs, "signing-key"), filepath.Join(abs, "secret-key")
	env := func(kv ...string) string {
		var b strings.Builder
		b.WriteString("# written by executor init; load with: set -a; . THIS_FILE; set +a\n")
		for i := 0; i < len(kv); i += 2 {
			fmt.Fprintf(&b, "%s=%s\n", kv[i], kv[i+1])
		}
		return b.String()
	}
	apiURL := "http://" + hostPort(*host, "8080")
	files := []struct{ name, content string }{
		{"signing-key", secret() + "\n"},
		{"secret-key", secret() + "\n"},
		{"executor.env", env(
			"TASKWIRE_LISTEN", "0.0.0.0:8080",
			"TASKWIRE_NATS_LISTEN", "0.0.0.0:4222",
			"TASKWIRE_OPERATOR_TOKEN", token,
			"TASKWIRE_NATS_USER", natsUser,
			"TASKWIRE_NATS_PASSWORD", natsPassword,
			"TASKWIRE_SIGNING_KEY_FILE", signingKey,
			"TASKWIRE_SECRET_KEY_FILE", secretKey,
		)},
		{"worker.env", env(
			"TASKWIRE_NATS_URL", "nats://"+hostPort(*host, "4222"),
			"TASKWIRE_NATS_USER", natsUser,
			"TASKWIRE_NATS_PASSWORD", natsPassword,
			"TASKWIRE_API_URL", apiURL,
		)},
		{"cli.env", env(
			"TASKWIRE_API_URL", apiURL,
			"TASKWIRE_OPERATOR_TOKEN", token,
		)},
	}
	if !*force {
		for _, f := range files {
			if _, err := os.Stat(filepath.Join(abs, f.name)); err == nil {
				return fmt.Errorf("init: %s exists: give --force to overwrite (it changes every secret)", filepath.Join(abs, f.name))
			} else if !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("init: %w", err)
			}
		}
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(abs, f.name), []byte(f.content), 0o600); err != nil {
			return fmt.Errorf("init: %w", err)
		}
	}
	fmt.Fprintf(c.stdout, "wrote %s/{executor,worker,cli}.env, signing-key and secret-key\n"+
		"executor:  set -a; . %[1]s/executor.env; set +a; executor serve\n"+
		"worker:    set -a; . worker.env; set +a; worker --queues default\n"+
		"operator:  set -a; . %[1]s/cli.env; set +a; executor workers\n", abs)
	return nil
}

// hostPort joins host and port, bracketing an IPv6 address.
func hostPort(host, port string) string {
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		return "[" + host + "]:" + port
	}
	return host + ":" + port
}
