package natstest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/taskwire/taskwire/internal/testbin"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Cleanup()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			os.Stderr.WriteString("goleak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}

// A nats-server process keeps what JetStream stored across a stop and a
// start on the same options (port and store), and listens where its
// options say.
func TestExecRestartsOnItsPortAndStore(t *testing.T) {
	opts := Options(t)
	p := Exec(t, opts)
	if opts.Port <= 0 || p.Port() != opts.Port || p.ClientURL() != fmt.Sprintf("nats://127.0.0.1:%d", opts.Port) {
		t.Fatalf("port %d, URL %s", opts.Port, p.ClientURL())
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	{
		nc := Connect(t, p)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "b", Storage: jetstream.FileStorage})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.PutString(ctx, "k", "v"); err != nil {
			t.Fatal(err)
		}
		nc.Close()
	}
	p.Stop()
	p.Stop() // twice is fine

	p2 := Exec(t, opts)
	if p2.ClientURL() != p.ClientURL() {
		t.Fatalf("restarted on %s, was %s", p2.ClientURL(), p.ClientURL())
	}
	nc := Connect(t, p2)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, "b")
	if err != nil {
		t.Fatalf("the bucket did not survive the restart: %v", err)
	}
	e, err := kv.Get(ctx, "k")
	if err != nil || string(e.Value()) != "v" {
		t.Fatalf("k after the restart: %v %v", e, err)
	}
}

// Options a configuration file of Exec's does not carry are refused, not
// dropped.
func TestExecRefusesOptionsItCannotCarry(t *testing.T) {
	opts := Options(t)
	opts.Port = 4222
	opts.MaxPayload = 1 << 10
	if _, err := configFile(opts); err == nil || !strings.Contains(err.Error(), "MaxPayload:1024") {
		t.Fatalf("configFile with MaxPayload: %v", err)
	}
	opts.MaxPayload = 0
	opts.Username, opts.Password = "u", `p"w`
	opts.JetStreamMaxStore = 64 << 20
	conf, err := configFile(opts)
	if err != nil {
		t.Fatal(err)
	}
	// The file is what nats-server reads back.
	path := t.TempDir() + "/nats.conf"
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("%v\n%s", err, conf)
	}
	if got.Host != opts.Host || got.Port != opts.Port || !got.JetStream || got.StoreDir != opts.StoreDir ||
		got.Username != "u" || got.Password != `p"w` || got.ServerName != opts.ServerName || got.JetStreamMaxStore != 64<<20 {
		t.Errorf("read back %+v\nfrom\n%s", got, conf)
	}
}

// A cluster of processes forms, and its URLs name every server.
func TestRunProcessCluster(t *testing.T) {
	c := RunProcessCluster(t, 3)
	if n := strings.Count(c.URLs(), ","); n != 2 {
		t.Fatalf("URLs %s", c.URLs())
	}
	nc := Connect(t, c.Procs[1])
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s"}, Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	if info := s.CachedInfo(); info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream cluster info %+v, want a leader and 2 replicas", info.Cluster)
	}
}
