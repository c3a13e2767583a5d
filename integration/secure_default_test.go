package integration

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/client"
	"github.com/taskwire/taskwire/internal/natstest"
	"github.com/taskwire/taskwire/internal/testbin"
	"github.com/taskwire/taskwire/queue/queuetest"
)

// envFile reads a KEY=VALUE file written by executor init, with every
// string replaced as r says.
func envFile(t *testing.T, path string, r *strings.Replacer) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	for line := range strings.SplitSeq(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		env = append(env, r.Replace(line))
	}
	return env
}

func portOf(t *testing.T, addr string) string {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Issue 17, item 7: off loopback the executor refuses to serve open unless
// --insecure (then it says so at start and in /readyz), and executor init
// makes the secure setup one step: a remote-style worker runs a task with
// the files it writes.
func TestSecureByDefaultOffLoopback(t *testing.T) {
	parallel(t, shared)
	b := buildBins(t, testbin.NoRace)
	ns := natstest.RunProcess(t)
	run := func(env []string, args ...string) (string, int) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		p := testbin.Start(t, "executor", b.executor, env, args...)
		select {
		case <-p.Done():
		case <-ctx.Done():
			p.Kill()
			return p.Output(), -1
		}
		code := 0
		if p.Err() != nil {
			code = p.Cmd.ProcessState.ExitCode()
		}
		return p.Output(), code
	}
	open := "0.0.0.0:" + portOf(t, testbin.FreeAddr(t))
	out, code := run(nil, "serve", "--nats-url", ns.ClientURL(), "--listen", open)
	if code != 2 || !strings.Contains(out, "refusing to start") || !strings.Contains(out, "--operator-token") {
		t.Errorf("API off loopback without a token: exit %d:\n%s", code, out)
	}
	out, code = run(nil, "serve", "--data-dir", t.TempDir(), "--listen", testbin.FreeAddr(t),
		"--nats-listen", "0.0.0.0:"+portOf(t, testbin.FreeAddr(t)))
	if code != 2 || !strings.Contains(out, "--nats-user") {
		t.Errorf("embedded NATS off loopback without auth: exit %d:\n%s", code, out)
	}

	// --insecure: it serves, and says so at start and in /readyz.
	c := newCluster(t, clusterOpts{plain: true, extra: []string{"--insecure"}})
	if !strings.Contains(c.exec.Output(), "insecure") {
		t.Logf("(loopback: no warning expected)")
	}
	addr := "0.0.0.0:" + portOf(t, testbin.FreeAddr(t))
	p := testbin.Start(t, "executor-insecure", b.executor, nil, "serve", "--nats-url", ns.ClientURL(), "--listen", addr, "--insecure")
	local := "http://127.0.0.1:" + portOf(t, addr)
	waitHealthy(t, local, p, nil)
	testbin.Eventually(t, 30*time.Second, "/readyz to warn", func() bool {
		_, body := httpGet(t, local+"/readyz")
		return strings.Contains(body, "warning:") && strings.Contains(body, "operator-token")
	})
	if !strings.Contains(p.Output(), "insecure setup") {
		t.Errorf("no warning at start:\n%s", p.Output())
	}

	// executor init, then an executor, a worker and the CLI with its files.
	dir := filepath.Join(t.TempDir(), "secure")
	out2, errOut, code := c.cli("init", "--dir", dir, "--host", "127.0.0.1")
	if code != 0 {
		t.Fatalf("init: exit %d: %s%s", code, out2, errOut)
	}
	if _, _, code := c.cli("init", "--dir", dir); code == 0 {
		t.Errorf("a second init without --force overwrote the secrets")
	}
	for _, f := range []string{"executor.env", "worker.env", "cli.env", "signing-key", "secret-key"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v, want 0600", f, err, st.Mode().Perm())
		}
	}
	apiPort, natsPort := portOf(t, testbin.FreeAddr(t)), portOf(t, testbin.FreeAddr(t))
	ports := strings.NewReplacer(":8080", ":"+apiPort, ":4222", ":"+natsPort)
	execEnv := append(envFile(t, filepath.Join(dir, "executor.env"), ports), "TASKWIRE_DATA_DIR="+t.TempDir())
	ex := testbin.Start(t, "executor-secure", b.executor, execEnv, "serve")
	api := "http://127.0.0.1:" + apiPort
	waitHealthy(t, api, ex, nil)
	if strings.Contains(ex.Output(), "insecure") {
		t.Errorf("the init setup still warns:\n%s", ex.Output())
	}
	// Nobody without the credentials gets in.
	if nc, err := queuetest.Connect("nats://127.0.0.1:"+natsPort, queuetest.ConnOpts{Timeout: 5 * time.Second}); err == nil {
		nc.Close()
		t.Errorf("the embedded NATS took a connection without credentials")
	}
	if status, _ := httpGet(t, api+"/api/v1/task-instances"); status != 401 {
		t.Errorf("the API without the token answered %d, want 401", status)
	}
	testbin.Start(t, "worker-secure", b.worker, envFile(t, filepath.Join(dir, "worker.env"), ports),
		"--queues", "default", "--heartbeat-interval", "300ms")
	cliEnv := envFile(t, filepath.Join(dir, "cli.env"), ports)
	var token string
	for _, kv := range cliEnv {
		if v, ok := strings.CutPrefix(kv, "TASKWIRE_OPERATOR_TOKEN="); ok {
			token = v
		}
	}
	capi, err := client.New(client.Config{URL: api, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ti, err := capi.Submit(ctx, activity.TaskSpec{Queue: "default", Entrypoint: sh("echo secure-ok")})
	if err != nil {
		t.Fatal(err)
	}
	got, err := capi.Wait(ctx, ti.ID, nil)
	if err != nil || got.State != activity.StateSuccess {
		t.Fatalf("task through the init setup: %v, %v", got, err)
	}
}
