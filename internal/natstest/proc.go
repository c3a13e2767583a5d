package natstest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/taskwire/taskwire/internal/testbin"
)

// ClientURLer is a running NATS server, in this process (*server.Server)
// or another (*Proc).
type ClientURLer interface{ ClientURL() string }

// serverPkg is the upstream nats-server's main package, at the version
// go.mod requires.
const serverPkg = "github.com/nats-io/nats-server/v2"

// Proc is a nats-server run as a child process: the upstream binary, built
// once per test process WITHOUT -race (testbin.NoRace). Tests of a whole
// cluster of taskwire processes use it so that the broker's own CPU is not
// multiplied by the race detector (nats-server's code is not ours to race
// check; ours, in the services, is still built with -race unless the test
// says otherwise) and does not load the test process.
type Proc struct {
	// Opts are the options it runs with (Port set to its port): change
	// them and pass them to Exec to restart it on its port and store.
	Opts *server.Options
	proc *testbin.Proc
}

// ClientURL is the URL clients connect to.
func (p *Proc) ClientURL() string { return fmt.Sprintf("nats://%s:%d", p.Opts.Host, p.Opts.Port) }

// Port is the client port it listens on.
func (p *Proc) Port() int { return p.Opts.Port }

// Stop shuts the server down (SIGTERM: nats-server's orderly shutdown) and
// waits until it has exited. Stopping it twice is fine.
func (p *Proc) Stop() { p.proc.Stop(30 * time.Second) }

// Output is what the server printed so far.
func (p *Proc) Output() string { return p.proc.Output() }

// RunProcess is RunServer as a child process (see Proc).
func RunProcess(t testing.TB) *Proc {
	t.Helper()
	return Exec(t, Options(t))
}

// RunProcessWith is RunServerWith as a child process (see Proc): configure
// may set only the options Exec supports.
func RunProcessWith(t testing.TB, configure func(*server.Options)) *Proc {
	t.Helper()
	opts := Options(t)
	if configure != nil {
		configure(opts)
	}
	return Exec(t, opts)
}

// Exec starts a nats-server process with opts and waits until it accepts
// connections (JetStream, when on, is enabled before it does). It is
// stopped when the test ends. A Port of -1 (Options' default) becomes a
// free port, written back to opts.Port. Exec supports the options a
// configuration file for the cases tests need says: ServerName, Host,
// Port, HTTPPort, JetStream, StoreDir, JetStreamMaxStore, Username and
// Password, Cluster's Name, Host and Port, and Routes; any other option set
// fails the test (use Start, in process, for TLS, accounts, operators).
func Exec(t testing.TB, opts *server.Options) *Proc {
	t.Helper()
	if opts.Port == -1 || opts.Port == 0 {
		opts.Port = freePorts(t, 1)[0]
	}
	conf, err := configFile(opts)
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	bin := testbin.MustBuildAll(t, testbin.NoRace, serverPkg)[0]
	dir := t.TempDir()
	path := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	name := "nats-server"
	if opts.ServerName != "" {
		name += " " + opts.ServerName
	}
	p := &Proc{Opts: opts, proc: testbin.Start(t, name, bin, nil, "-c", path)}
	addr := net.JoinHostPort(opts.Host, fmt.Sprint(opts.Port))
	deadline := time.Now().Add(readyTimeout)
	for !infoFrom(addr) {
		select {
		case <-p.proc.Done():
			t.Fatalf("natstest: nats-server exited: %v\n%s", p.proc.Err(), p.proc.Output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("natstest: nats-server on %s not ready after %s\n%s", addr, readyTimeout, p.proc.Output())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return p
}

// infoFrom reports whether a NATS server at addr greets a client (its INFO
// line).
func infoFrom(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "INFO ")
}

// configFile writes opts as a nats-server configuration, or says which
// option it cannot.
func configFile(opts *server.Options) (string, error) {
	rest := *opts
	// What the file says, or what does not matter out of process (the
	// child logs to the test's output only when the test fails; signals
	// are how Stop stops it).
	rest.ServerName, rest.Host, rest.Port, rest.HTTPPort = "", "", 0, 0
	rest.JetStream, rest.StoreDir, rest.JetStreamMaxStore = false, "", 0
	rest.Username, rest.Password = "", ""
	rest.Cluster.Name, rest.Cluster.Host, rest.Cluster.Port = "", "", 0
	rest.Routes = nil
	rest.NoLog, rest.NoSigs = false, false
	if !reflect.DeepEqual(rest, server.Options{}) {
		return "", fmt.Errorf("Exec supports only the options its doc lists; these are set too (run the server in process with Start): %+v", rest)
	}
	q := func(s string) string {
		b, _ := json.Marshal(s)
		return string(b)
	}
	var b strings.Builder
	if opts.ServerName != "" {
		fmt.Fprintf(&b, "server_name: %s\n", q(opts.ServerName))
	}
	fmt.Fprintf(&b, "host: %s\nport: %d\n", q(opts.Host), opts.Port)
	if opts.HTTPPort != 0 {
		fmt.Fprintf(&b, "http: %s\n", q(net.JoinHostPort(opts.Host, fmt.Sprint(opts.HTTPPort))))
	}
	if opts.JetStream {
		fmt.Fprintf(&b, "jetstream {\n  store_dir: %s\n", q(opts.StoreDir))
		if opts.JetStreamMaxStore > 0 {
			fmt.Fprintf(&b, "  max_file_store: %d\n", opts.JetStreamMaxStore)
		}
		b.WriteString("}\n")
	}
	if opts.Username != "" {
		fmt.Fprintf(&b, "authorization {\n  user: %s\n  password: %s\n}\n", q(opts.Username), q(opts.Password))
	}
	if opts.Cluster.Port != 0 {
		fmt.Fprintf(&b, "cluster {\n  name: %s\n  host: %s\n  port: %d\n  routes: [\n", q(opts.Cluster.Name), q(opts.Cluster.Host), opts.Cluster.Port)
		for _, r := range opts.Routes {
			fmt.Fprintf(&b, "    %s\n", q(r.String()))
		}
		b.WriteString("  ]\n}\n")
	}
	return b.String(), nil
}

// ProcCluster is RunCluster's Cluster as child processes (see Proc).
type ProcCluster struct {
	Procs []*Proc
}

// URLs is the client URLs of every server, comma separated, as --nats-url
// takes them.
func (c *ProcCluster) URLs() string {
	urls := make([]string, len(c.Procs))
	for i, p := range c.Procs {
		urls[i] = p.ClientURL()
	}
	return strings.Join(urls, ",")
}

// RunProcessCluster is RunCluster as child processes (see Proc): n
// servers clustered over routes on 127.0.0.1, each storing in its own
// t.TempDir(); it returns when every server's /healthz says its JetStream
// is current with a meta leader.
func RunProcessCluster(t testing.TB, n int) *ProcCluster {
	t.Helper()
	ports := freePorts(t, 3*n)
	routes := make([]string, n)
	for i := range n {
		routes[i] = fmt.Sprintf("nats://127.0.0.1:%d", ports[n+i])
	}
	c := &ProcCluster{}
	for i := range n {
		o := Options(t)
		o.ServerName = fmt.Sprintf("n%d", i)
		o.Port, o.HTTPPort = ports[i], ports[2*n+i]
		o.Cluster = server.ClusterOpts{Name: "natstest", Host: "127.0.0.1", Port: ports[n+i]}
		o.Routes = server.RoutesFromStr(strings.Join(routes, ","))
		c.Procs = append(c.Procs, Exec(t, o))
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for _, p := range c.Procs {
		url := fmt.Sprintf("http://127.0.0.1:%d/healthz", p.Opts.HTTPPort)
		for {
			resp, err := hc.Get(url)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("natstest: the JetStream cluster is not healthy after 30s (%s: %v)", url, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c
}
