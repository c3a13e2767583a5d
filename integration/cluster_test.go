package integration

import (
	"cmp"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/client"
	"github.com/taskwire/taskwire/internal/flagenv"
	"github.com/taskwire/taskwire/internal/natstest"
	"github.com/taskwire/taskwire/internal/netns"
	"github.com/taskwire/taskwire/internal/testbin"
)

func TestMain(m *testing.M) {
	flag.Parse()
	if err := setupParallel(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	code := m.Run()
	if testbin.CPUReport() {
		fmt.Println("where the CPU went (" + testbin.CPUReportEnv + "):")
		testbin.WriteCPUReport(os.Stdout)
	}
	testbin.Cleanup()
	os.Exit(code)
}

// bins are the binaries every test runs.
type bins struct{ executor, worker, triggerer, gotasks string }

// buildAll builds the services (with -race under go test -race), in one go
// build, and the Go SDK's task runtime, which the workers start once per
// try, without (see testbin.NoRace).
func buildAll(t testing.TB) bins { return buildBins(t, testbin.AsTest) }

// buildBins is buildAll with the services built in mode: testbin.NoRace
// for the load tests and the plain ones (see machine_test.go).
func buildBins(t testing.TB, mode testbin.Mode) bins {
	t.Helper()
	svc := testbin.MustBuildAll(t, mode, "./cmd/executor", "./cmd/worker", "./cmd/triggerer")
	return bins{
		executor:  svc[0],
		worker:    svc[1],
		triggerer: svc[2],
		gotasks:   testbin.MustBuildAll(t, testbin.NoRace, "./examples/gotasks")[0],
	}
}

// cluster is a NATS server, an executor and workers, all real.
type cluster struct {
	t       testing.TB
	bins    bins
	nats    natstest.ClientURLer
	natsURL string
	apiURL  string
	exec    *testbin.Proc
	api     *client.Client
	dir     string
	// submitAPIs, when set, are the executors submitMany takes turns among.
	submitAPIs []*client.Client
	// natsArgs are the NATS client flags (credentials, TLS) of every
	// process; apiCA, when set, is the CA of the executor's https.
	natsArgs []string
	apiCA    string
}

type clusterOpts struct {
	// zombieThreshold is the executor's --zombie-threshold, default 10s:
	// a test that kills or freezes a worker mid-task gives its own; for
	// the others a zombie is only a heartbeat made late by a loaded
	// machine (300ms apart, 3s late failed tests beside Airflow's start).
	zombieThreshold string
	ackWait         string // executor --activity-ack-wait
	operatorToken   string
	logLevel        string // executor --log-level, default debug
	natsURL         string // NATS URLs (comma separated) to use instead of a server of the test's own
	replicas        int    // executor --replicas, default 1
	// nats is the server to run against, configured by the test (users,
	// TLS, accounts); default a fresh open one in a process of its own
	// (natstest.RunProcess: a nats-server built without -race).
	nats natstest.ClientURLer
	// natsArgs are NATS client flags given to every process.
	natsArgs []string
	// apiCA makes the executor serve https (give --tls-cert and --tls-key
	// in extra) and every client trust this CA file.
	apiCA string
	extra []string // more executor serve flags
	env   []string // more executor environment (KEY=VALUE)
	// listen is the executor's address, default a free one on 127.0.0.1
	// (a test with network namespaces gives one on their veth).
	listen string
	// load runs the services built without -race: a load test's, which
	// runs many tasks through code the other tests race-check (see
	// machine_test.go).
	load bool
	// plain runs the services built without -race in a test of what
	// surrounds their cross-process paths rather than of those paths:
	// Airflow, a browser, a CLI, TLS and auth, the API's input checks (see
	// machine_test.go).
	plain bool
}

func newCluster(t testing.TB, o clusterOpts) *cluster {
	t.Helper()
	mode := testbin.AsTest
	if o.load || o.plain {
		mode = testbin.NoRace
	}
	c := &cluster{t: t, bins: buildBins(t, mode), dir: t.TempDir()}
	switch {
	case o.natsURL != "":
		c.natsURL = o.natsURL
	case o.nats != nil:
		c.nats = o.nats
		c.natsURL = c.nats.ClientURL()
	default:
		c.nats = natstest.RunProcess(t)
		c.natsURL = c.nats.ClientURL()
	}
	c.natsArgs, c.apiCA = o.natsArgs, o.apiCA
	c.startExecutor(o)
	return c
}

func (c *cluster) startExecutor(o clusterOpts) {
	c.t.Helper()
	c.exec, c.apiURL, c.api = c.runExecutor("executor", cmp.Or(o.listen, testbin.FreeAddr(c.t)), o)
}

// runExecutor starts an executor process listening on addr and waits
// until it is healthy; it returns the process, its API URL and a client.
func (c *cluster) runExecutor(name, addr string, o clusterOpts) (*testbin.Proc, string, *client.Client) {
	c.t.Helper()
	if o.zombieThreshold == "" {
		o.zombieThreshold = "10s"
	}
	args := []string{"serve", "--nats-url", c.natsURL, "--listen", addr,
		"--zombie-threshold", o.zombieThreshold, "--scan-interval", "200ms", "--log-level", cmp.Or(o.logLevel, "debug")}
	if o.ackWait != "" {
		args = append(args, "--activity-ack-wait", o.ackWait)
	}
	if o.operatorToken != "" {
		args = append(args, "--operator-token", o.operatorToken)
	}
	if o.replicas > 0 {
		args = append(args, "--replicas", fmt.Sprint(o.replicas))
	}
	args = append(append(args, c.natsArgs...), o.extra...)
	p := testbin.Start(c.t, name, c.bins.executor, o.env, args...)
	url := "http://" + addr
	var tc *tls.Config
	if c.apiCA != "" {
		url = "https://" + addr
		var err error
		if tc, err = flagenv.ClientTLS(c.apiCA); err != nil {
			c.t.Fatal(err)
		}
	}
	waitHealthy(c.t, url, p, tc)
	api, err := client.New(client.Config{URL: url, Token: o.operatorToken, TLSConfig: tc})
	if err != nil {
		c.t.Fatal(err)
	}
	return p, url, api
}

// waitHealthy waits for the executor's /healthz, over https trusting tc
// when it is not nil.
func waitHealthy(t testing.TB, url string, p *testbin.Proc, tc *tls.Config) {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second}
	if tc != nil {
		hc.Transport = &http.Transport{TLSClientConfig: tc}
		defer hc.CloseIdleConnections()
	}
	testbin.Eventually(t, 30*time.Second, "executor /healthz", func() bool {
		select {
		case <-p.Done():
			t.Fatalf("executor exited: %v\n%s", p.Err(), p.Output())
		default:
		}
		resp, err := hc.Get(url + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

type workerOpts struct {
	name        string
	queues      string // default "default,go"
	concurrency int    // default 4
	config      string // a runtime file (--config) instead of --runtime go=gotasks
	apiURL      string // the executor to call, default the cluster's
	extra       []string
	// ns runs the worker in this network namespace.
	ns  *netns.NS
	env []string // more environment for the worker (and so its tasks)
}

// startWorker starts a worker serving the command runtime and the Go SDK
// runtime (queue "go").
func (c *cluster) startWorker(o workerOpts) *testbin.Proc {
	c.t.Helper()
	if o.queues == "" {
		o.queues = "default,go"
	}
	if o.concurrency == 0 {
		o.concurrency = 4
	}
	if o.name == "" {
		o.name = "worker"
	}
	args := []string{"--nats-url", c.natsURL, "--api-url", cmp.Or(o.apiURL, c.apiURL), "--queues", o.queues,
		"--concurrency", fmt.Sprint(o.concurrency)}
	switch {
	case o.config != "":
		args = append(args, "--config", o.config)
	case slices.Contains(strings.Split(o.queues, ","), "go"):
		args = append(args, "--runtime", "go="+c.bins.gotasks+" --comm {comm_addr} --logs {logs_addr}")
	}
	args = append(args, "--heartbeat-interval", "300ms", "--kill-grace", "1s", "--grace-period", "5s", "--log-level", "debug")
	if c.apiCA != "" {
		args = append(args, "--api-ca", c.apiCA)
	}
	args = append(append(args, c.natsArgs...), o.extra...)
	if o.ns != nil {
		bin, args := o.ns.Command(c.bins.worker, args...)
		return testbin.Start(c.t, o.name, bin, o.env, args...)
	}
	return testbin.Start(c.t, o.name, c.bins.worker, o.env, args...)
}

type triggererOpts struct {
	name      string // default "triggerer"
	capacity  int    // default 1000
	deadAfter string // default 1500ms
	extra     []string
	env       []string // more environment for the triggerer (and its Python trigger runtime)
}

// triggerer is a running triggerer process and its /healthz address.
type triggerer struct {
	*testbin.Proc
	addr string
}

// startTriggerer starts a triggerer with a fast heartbeat (300ms).
func (c *cluster) startTriggerer(o triggererOpts) *triggerer {
	c.t.Helper()
	if o.name == "" {
		o.name = "triggerer"
	}
	if o.capacity == 0 {
		o.capacity = 1000
	}
	if o.deadAfter == "" {
		o.deadAfter = "1500ms"
	}
	addr := testbin.FreeAddr(c.t)
	args := []string{"--nats-url", c.natsURL, "--capacity", fmt.Sprint(o.capacity), "--id", o.name,
		"--heartbeat-interval", "300ms", "--dead-after", o.deadAfter, "--listen", addr, "--log-level", "debug"}
	args = append(append(args, c.natsArgs...), o.extra...)
	p := testbin.Start(c.t, o.name, c.bins.triggerer, o.env, args...)
	tr := &triggerer{Proc: p, addr: addr}
	testbin.Eventually(c.t, 30*time.Second, o.name+" /healthz", func() bool {
		select {
		case <-p.Done():
			c.t.Fatalf("%s exited: %v\n%s", o.name, p.Err(), p.Output())
		default:
		}
		_, err := tr.held()
		return err == nil
	})
	return tr
}

// held asks the triggerer's /healthz how many triggers it holds.
func (tr *triggerer) held() (int, error) {
	resp, err := http.Get("http://" + tr.addr + "/healthz")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	var id string
	var n int
	if _, err := fmt.Sscanf(string(b), "ok: %s holds %d triggers", &id, &n); err != nil {
		return 0, fmt.Errorf("healthz %q: %w", b, err)
	}
	return n, nil
}

// waitHeld waits until tr holds n triggers.
func (c *cluster) waitHeld(tr *triggerer, n int, timeout time.Duration) {
	c.t.Helper()
	testbin.Eventually(c.t, timeout, fmt.Sprintf("triggerer to hold %d triggers", n), func() bool {
		got, err := tr.held()
		return err == nil && got == n
	})
}

func (c *cluster) submit(spec activity.TaskSpec) *activity.TaskInstance {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ti, err := c.api.Submit(ctx, spec)
	if err != nil {
		c.t.Fatalf("submit: %v", err)
	}
	return ti
}

// wait waits until the task instance is finished and returns it.
func (c *cluster) wait(id string, timeout time.Duration) *activity.TaskInstance {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ti, err := c.api.Wait(ctx, id, nil)
	if err != nil {
		c.t.Fatalf("wait for %s: %v", id, err)
	}
	return ti
}

// waitState polls until the task instance is in state st.
func (c *cluster) waitState(id string, st activity.State, timeout time.Duration) *activity.TaskInstance {
	c.t.Helper()
	var last *activity.TaskInstance
	testbin.Eventually(c.t, timeout, fmt.Sprintf("%s to be %s", id, st), func() bool {
		ti, err := c.api.Get(context.Background(), id)
		if err != nil {
			return false
		}
		last = ti
		return ti.State == st
	})
	return last
}

func (c *cluster) logs(id string) string {
	c.t.Helper()
	var b strings.Builder
	err := c.api.Logs(context.Background(), id, 0, false, func(l client.LogLine) error {
		// The event, then the whole line with its fields.
		fmt.Fprintf(&b, "%s\t%s\n", l.Event, l.Raw)
		return nil
	})
	if err != nil {
		c.t.Fatalf("logs of %s: %v", id, err)
	}
	return b.String()
}

func (c *cluster) path(name string) string { return filepath.Join(c.dir, name) }

// with returns c for the (sub)test t of a test sharing c: its helpers
// fail t, and what they start stops at t's end (c itself at its own
// test's).
func (c *cluster) with(t testing.TB) *cluster {
	d := *c
	d.t = t
	return &d
}

func sh(script string) activity.Entrypoint {
	return activity.Entrypoint{Command: []string{"/bin/sh", "-c", script}}
}

func contextWithTimeout(t testing.TB, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
