package integration

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/client"
	"github.com/taskwire/taskwire/internal/natstest"
	"github.com/taskwire/taskwire/internal/testbin"
	"github.com/taskwire/taskwire/internal/testcert"
	"github.com/taskwire/taskwire/queue"
	"github.com/taskwire/taskwire/queue/queuetest"
)

// Connection and variable secrets are sealed at rest in KV, never appear
// in the executor's or the worker's own logs (at debug level), and are
// masked as "***" in the task's log lines (its logger, stdout and stderr)
// and in the reason of its failed try, when a task prints the secrets it
// fetched.
func TestSecretsSealedAndMasked(t *testing.T) {
	parallel(t, shared)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "secret.key")
	if err := os.WriteFile(keyFile, []byte("an operator's secret key of at least 32 bytes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, clusterOpts{plain: true, extra: []string{"--secret-key-file", keyFile}})
	w := c.startWorker(workerOpts{queues: "go"})
	ctx := t.Context()
	const password, token, apiKey = "pw-Wq8z1x", "tok-4Hd9s2", "sk-live-7Yt3"
	if _, err := c.api.SetConnection(ctx, activity.Connection{ConnID: "db", ConnType: "postgres", Host: "db.internal",
		Login: "etl", Password: password, Extra: map[string]any{"api_token": token, "region": "eu-1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.api.SetVariable(ctx, "service_api_key", apiKey, ""); err != nil {
		t.Fatal(err)
	}

	ti := c.wait(c.submit(activity.TaskSpec{Queue: "go", Entrypoint: activity.Entrypoint{Task: "leak_secrets"}}).ID, 30*time.Second)
	if ti.State != activity.StateFailed || !strings.Contains(ti.Reason, "password *** refused") {
		t.Errorf("task %s, reason %q: want failed with the password masked", ti.State, ti.Reason)
	}
	logs := c.logs(ti.ID)
	for _, want := range []string{"connecting with password ***", "stdout: *** *** ***", "stderr: *** *** ***", `"token":"***"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("task logs lack %q:\n%s", want, logs)
		}
	}
	if !strings.Contains(logs, "login as etl") {
		t.Errorf("masking hid more than the secrets:\n%s", logs)
	}

	nc := natstest.Connect(t, c.nats)
	raws := map[string][]byte{}
	for _, bucket := range []string{queue.BucketConnections, queue.BucketVariables} {
		msgs, err := queuetest.StreamMsgs(ctx, nc, "KV_"+bucket)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			raws[bucket+" "+m.Subject] = m.Data
		}
	}
	if len(raws) < 2 {
		t.Fatalf("read %d raw KV entries, want the connection and the variable", len(raws))
	}
	for what, raw := range raws {
		for _, s := range []string{password, token, apiKey, "db.internal", "eu-1"} {
			if strings.Contains(string(raw), s) {
				t.Errorf("raw KV entry %s holds %q in plain text", what, s)
			}
		}
	}
	for _, p := range map[string]string{"executor": c.exec.Output(), "worker": w.Output()} {
		for _, s := range []string{password, token, apiKey} {
			if strings.Contains(p, s) {
				t.Errorf("a process log holds the secret %q", s)
			}
		}
	}
}

// A task that runs for three times its execution token's life keeps
// acting: the worker takes the token the executor refreshes on each
// heartbeat past half its life, so the task's late XCom push and its final
// state are accepted.
func TestLongTaskTokenRefreshed(t *testing.T) {
	parallel(t, timed)
	c := newCluster(t, clusterOpts{plain: true, extra: []string{"--execution-token-ttl", "2s"}})
	c.startWorker(workerOpts{queues: "go"})
	start := time.Now()
	ti := c.wait(c.submit(activity.TaskSpec{Queue: "go", DagID: "long", Entrypoint: activity.Entrypoint{Task: "push"},
		Params: map[string]any{"delay": 6}}).ID, 60*time.Second)
	if ti.State != activity.StateSuccess || ti.TryNumber != 1 {
		t.Fatalf("long task %s (try %d): %s\n%s", ti.State, ti.TryNumber, ti.Reason, c.logs(ti.ID))
	}
	if d := time.Since(start); d < 6*time.Second {
		t.Fatalf("task took %s, not longer than its tokens live", d)
	}
	v, err := c.api.XCom(t.Context(), ti.DagID, ti.RunID, ti.TaskID, "value")
	if n, ok := v.(float64); err != nil || !ok || n != 42 {
		t.Errorf("xcom pushed after 6s: %v (%T), %v", v, v, err)
	}
}

// The APIs over https with a private CA and the operator token: a worker
// trusting the CA runs tasks, the CLI with --api-ca and --token works, a
// client trusting only the system's roots, a plain-http client and a
// client without the token are refused.
func TestAPIOverTLS(t *testing.T) {
	parallel(t, shared)
	ca := testcert.New(t)
	srv := ca.Server(t, "executor")
	c := newCluster(t, clusterOpts{plain: true, apiCA: ca.CertFile, operatorToken: "op-token-1",
		extra: []string{"--tls-cert", srv.CertFile, "--tls-key", srv.KeyFile}})
	c.startWorker(workerOpts{queues: "go"})
	ctx := t.Context()
	ti := c.wait(c.submit(activity.TaskSpec{Queue: "go", Entrypoint: activity.Entrypoint{Task: "push"}}).ID, 30*time.Second)
	if ti.State != activity.StateSuccess {
		t.Fatalf("task over https: %s %s", ti.State, ti.Reason)
	}

	cli := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, c.bins.executor, args...)
		cmd.Env = append(os.Environ(), "TASKWIRE_OPERATOR_TOKEN=", "TASKWIRE_API_CA=")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := cli("get", ti.ID, "--api-url", c.apiURL, "--api-ca", ca.CertFile, "--token", "op-token-1"); err != nil || !strings.Contains(out, "success") {
		t.Errorf("CLI over https: %v\n%s", err, out)
	}
	if out, err := cli("get", ti.ID, "--api-url", c.apiURL, "--token", "op-token-1"); err == nil || !strings.Contains(out, "certificate") {
		t.Errorf("CLI without the CA: %v\n%s, want a certificate error", err, out)
	}
	if out, err := cli("get", ti.ID, "--api-url", c.apiURL, "--api-ca", ca.CertFile); err == nil || !strings.Contains(out, "401") {
		t.Errorf("CLI without the token: %v\n%s, want 401", err, out)
	}

	noToken, err := client.New(client.Config{URL: c.apiURL, TLSConfig: ca.ClientTLS()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := noToken.Get(ctx, ti.ID); !errors.Is(err, client.ErrUnauthorized) {
		t.Errorf("public API without the operator token: %v, want 401", err)
	}
	resp, err := http.Get("http" + strings.TrimPrefix(c.apiURL, "https") + "/healthz")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("the https port answered plain http with 200")
		}
	}
}

// Every component connects to a NATS server that requires a user and
// password, creds files (operator/account JWTs and nkeys), or mutual TLS,
// and a deferring task runs through the executor, a worker and a
// triggerer; a client without the credentials is refused.
func TestNATSAuth(t *testing.T) {
	parallel(t, shared)
	type setup struct {
		configure func(*server.Options)
		args      []string // NATS flags of every process
		conn      queuetest.ConnOpts
	}
	for name, mk := range map[string]func(t *testing.T) setup{
		"user_password": func(t *testing.T) setup {
			return setup{
				configure: func(o *server.Options) { o.Username, o.Password = "taskwire", "pw-nats-1" },
				args:      []string{"--nats-user", "taskwire", "--nats-password", "pw-nats-1"},
				conn:      queuetest.ConnOpts{User: "taskwire", Password: "pw-nats-1"},
			}
		},
		"creds": func(t *testing.T) setup {
			op := natstest.NewOperator(t)
			creds := op.Creds(t, "taskwire", nil)
			return setup{configure: op.Configure, args: []string{"--nats-creds", creds}, conn: queuetest.ConnOpts{CredsFile: creds}}
		},
		"mutual_tls": func(t *testing.T) setup {
			ca := testcert.New(t)
			srv, cl := ca.Server(t, "nats"), ca.Client(t, "taskwire")
			tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: srv.CertFile, KeyFile: srv.KeyFile, CaFile: ca.CertFile, Verify: true})
			if err != nil {
				t.Fatal(err)
			}
			return setup{
				configure: func(o *server.Options) { o.TLSConfig, o.TLS, o.TLSVerify, o.TLSTimeout = tc, true, true, 2 },
				args:      []string{"--nats-tls-ca", ca.CertFile, "--nats-tls-cert", cl.CertFile, "--nats-tls-key", cl.KeyFile},
				conn:      queuetest.ConnOpts{TLSCA: ca.CertFile, TLSCert: cl.CertFile, TLSKey: cl.KeyFile},
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			s := mk(t)
			ns := natstest.RunServerWith(t, s.configure)
			if nc, err := queuetest.Connect(ns.ClientURL(), queuetest.ConnOpts{}); err == nil {
				nc.Close()
				t.Fatal("a client without credentials connected")
			}
			c := newCluster(t, clusterOpts{plain: true, nats: ns, natsArgs: s.args})
			c.startWorker(workerOpts{queues: "go"})
			c.startTriggerer(triggererOpts{})
			ti := c.wait(c.submit(goTask("wait", map[string]any{"seconds": 0.2})).ID, 30*time.Second)
			if ti.State != activity.StateSuccess {
				t.Fatalf("deferring task: %s %s\n%s", ti.State, ti.Reason, c.logs(ti.ID))
			}
			nc, err := queuetest.Connect(ns.ClientURL(), s.conn)
			if err != nil {
				t.Fatalf("connect with the credentials: %v", err)
			}
			nc.Close()
		})
	}
}

// A worker and a triggerer limited by the NATS permissions of
// examples/nats/permissions.conf run a deferring task of the worker's
// queue, and the worker can neither create nor pull from another queue's
// consumer, nor update streams, nor read a bucket: the other queue's
// activity stays on the queue.
func TestWorkerPermissions(t *testing.T) {
	parallel(t, shared)
	opts, err := server.ProcessConfigFile("../examples/nats/permissions.conf")
	if err != nil {
		t.Fatal(err)
	}
	ns := natstest.RunServerWith(t, func(o *server.Options) {
		o.Users, o.Username, o.Password = opts.Users, "", ""
	})
	c := newCluster(t, clusterOpts{plain: true, nats: ns, natsArgs: []string{"--nats-user", "executor", "--nats-password", "change-me-executor"}})
	// The cluster's NATS flags come first; each process's own flags win.
	c.startWorker(workerOpts{queues: "default", extra: []string{
		"--nats-user", "worker_default", "--nats-password", "change-me-worker",
		"--nats-inbox-prefix", "_INBOX_worker_default",
		"--runtime", "default=" + c.bins.gotasks + " --comm {comm_addr} --logs {logs_addr}"}})
	c.startTriggerer(triggererOpts{extra: []string{"--nats-user", "triggerer", "--nats-password", "change-me-triggerer",
		"--nats-inbox-prefix", "_INBOX_triggerer"}})
	spec := goTask("wait", map[string]any{"seconds": 0.2})
	spec.Queue = "default"
	ti := c.wait(c.submit(spec).ID, 30*time.Second)
	if ti.State != activity.StateSuccess || len(ti.Tries) != 1 {
		t.Fatalf("deferring task on the worker's own queue: %s %s\n%s", ti.State, ti.Reason, c.logs(ti.ID))
	}

	other := c.submit(activity.TaskSpec{Queue: "other", Entrypoint: sh("true")})
	// The executor's user makes the other queue's consumer, so only the
	// worker's permissions stand in the way.
	admin, err := queuetest.Connect(ns.ClientURL(), queuetest.ConnOpts{User: "executor", Password: "change-me-executor"})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	aq, err := queue.New(t.Context(), admin, queue.Config{Bind: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := aq.ActivityConsumer(t.Context(), "other"); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var violations []string
	nc, err := queuetest.Connect(ns.ClientURL(), queuetest.ConnOpts{User: "worker_default", Password: "change-me-worker",
		InboxPrefix: "_INBOX_worker_default",
		OnAsyncError: func(err error) {
			if errors.Is(err, queuetest.ErrPermissionViolation) {
				mu.Lock()
				violations = append(violations, err.Error())
				mu.Unlock()
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	wq, err := queue.New(t.Context(), nc, queue.Config{Bind: true})
	if err != nil {
		t.Fatalf("bind as the worker: %v", err)
	}
	// A refused request gets no answer: each of these is a bounded wait.
	cctx, cancel := context.WithTimeout(t.Context(), time.Second)
	if _, err := queue.New(cctx, nc, queue.Config{}); err == nil {
		t.Error("the worker's user created or updated streams")
	}
	cancel()
	// Creating (or binding to) the other queue's consumer is refused.
	cctx, cancel = context.WithTimeout(t.Context(), time.Second)
	if _, err := wq.ActivityConsumer(cctx, "other"); err == nil {
		t.Error("the worker created a consumer of queue other")
	}
	cancel()
	// Pulling from it by name, and reading a bucket, are refused too.
	if _, err := queuetest.Request(nc, "$JS.API.CONSUMER.MSG.NEXT.ACTIVITIES."+queue.ActivityConsumerName("other"),
		[]byte(`{"batch":1,"expires":500000000}`), time.Second); err == nil {
		t.Error("the worker pulled from queue other's consumer")
	}
	cctx, cancel = context.WithTimeout(t.Context(), time.Second)
	if _, err := wq.Bucket(queue.BucketConnections).Get(cctx, "any"); err == nil || errors.Is(err, queue.ErrKeyNotFound) {
		t.Errorf("the worker read the connections bucket: %v", err)
	}
	cancel()
	mu.Lock()
	got := strings.Join(violations, "\n")
	mu.Unlock()
	// A bound client looks the consumer up before it would create it:
	// the lookup is refused.
	for _, want := range []string{"STREAM.UPDATE.ACTIVITIES", "CONSUMER.INFO.ACTIVITIES.queue-other", "CONSUMER.MSG.NEXT.ACTIVITIES.queue-other", "KV_connections"} {
		if !strings.Contains(got, want) {
			t.Errorf("permission violations %q, want one for %s", got, want)
		}
	}
	info, err := queuetest.Consumer(t.Context(), admin, queue.StreamActivities, queue.ActivityConsumerName("other"))
	if err != nil {
		t.Fatal(err)
	}
	if info.NumPending != 1 || info.NumAckPending != 0 {
		t.Errorf("other queue: %d pending, %d ack pending; want its activity untouched", info.NumPending, info.NumAckPending)
	}
	if got, _ := c.api.Get(t.Context(), other.ID); got.State != activity.StateQueued {
		t.Errorf("other queue's task is %s, want queued", got.State)
	}
}

// With no --nats-url the executor embeds NATS; with --nats-listen-tls-cert
// that server requires TLS (and here a password) of every client over the
// network, while the executor itself connects in process: a worker trusting
// the CA runs a task, a client without TLS is refused.
func TestEmbeddedNATSOverTLS(t *testing.T) {
	parallel(t, shared)
	ca := testcert.New(t)
	cert := ca.Server(t, "nats")
	c := &cluster{t: t, bins: buildBins(t, testbin.NoRace), dir: t.TempDir()}
	natsAddr, apiAddr := testbin.FreeAddr(t), testbin.FreeAddr(t)
	auth := []string{"--nats-user", "taskwire", "--nats-password", "pw-embedded"}
	c.exec = testbin.Start(t, "executor", c.bins.executor, nil, append([]string{"serve", "--data-dir", c.path("data"),
		"--listen", apiAddr, "--nats-listen", natsAddr, "--nats-listen-tls-cert", cert.CertFile,
		"--nats-listen-tls-key", cert.KeyFile, "--log-level", "debug"}, auth...)...)
	c.apiURL, c.natsURL = "http://"+apiAddr, "nats://"+natsAddr
	waitHealthy(t, c.apiURL, c.exec, nil)
	var err error
	if c.api, err = client.New(client.Config{URL: c.apiURL}); err != nil {
		t.Fatal(err)
	}
	if nc, err := queuetest.Connect(c.natsURL, queuetest.ConnOpts{User: "taskwire", Password: "pw-embedded"}); err == nil {
		nc.Close()
		t.Fatal("a client without TLS connected to the embedded NATS")
	}
	c.natsArgs = append([]string{"--nats-tls-ca", ca.CertFile}, auth...)
	c.startWorker(workerOpts{queues: "default"})
	ti := c.wait(c.submit(activity.TaskSpec{Queue: "default", Entrypoint: sh("echo over tls")}).ID, 30*time.Second)
	if ti.State != activity.StateSuccess {
		t.Fatalf("task through the embedded NATS over TLS: %s %s", ti.State, ti.Reason)
	}
}
