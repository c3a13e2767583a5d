package flagenv

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func TestFlagsFallBackToEnv(t *testing.T) {
	t.Setenv("TASKWIRE_NATS_URL", "nats://env:4222")
	t.Setenv("TASKWIRE_NATS_PASSWORD", "pw")
	t.Setenv("TASKWIRE_X_DURATION", "3s")
	t.Setenv("TASKWIRE_X_INT", "nope")
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var n NATS
	var l Log
	n.Register(fs, "nats://default:4222", "NATS URL")
	l.Register(fs)
	if err := fs.Parse([]string{"--nats-user", "flag-user", "--log-format", "json"}); err != nil {
		t.Fatal(err)
	}
	c := n.Conn("me", nil)
	if c.URL != "nats://env:4222" || c.User != "flag-user" || c.Password != "pw" || c.Name != "me" {
		t.Errorf("conn config %+v", c)
	}
	if attrs := n.LogAttrs(); strings.Contains(strings.Join(toStrings(attrs), " "), "pw") {
		t.Errorf("log attrs leak the password: %v", attrs)
	}
	if Duration("TASKWIRE_X_DURATION", time.Second) != 3*time.Second || Int("TASKWIRE_X_INT", 7) != 7 {
		t.Error("env duration/int fallback")
	}
	if _, err := l.Logger(); err != nil {
		t.Errorf("logger: %v", err)
	}
	for _, bad := range []Log{{Level: "loud", Format: "text"}, {Level: "info", Format: "xml"}} {
		if _, err := bad.Logger(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func toStrings(v []any) []string {
	out := make([]string, len(v))
	for i, x := range v {
		if s, ok := x.(string); ok {
			out[i] = s
		}
	}
	return out
}
