package flagenv

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func TestFlagsFallBackToEnv(t *testing.T) {
	env := map[string]string{
		"TASKWIRE_NATS_URL":      "nats://env:4222",
		"TASKWIRE_NATS_PASSWORD": "pw",
		"TASKWIRE_NATS_USER":     "env-user",
		"TASKWIRE_LOG_FORMAT":    "text",
		"TASKWIRE_X_DURATION":    "3s",
		"TASKWIRE_X_EMPTY":       "",
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var n NATS
	var l Log
	n.Register(fs, "nats://default:4222", "NATS URL")
	l.Register(fs)
	d := fs.Duration("d", time.Second, "a duration (TASKWIRE_X_DURATION)")
	e := fs.String("e", "kept", "empty in the environment (TASKWIRE_X_EMPTY)")
	if err := Parse(fs, []string{"--nats-user", "flag-user", "--log-format", "json"}, lookup(env)); err != nil {
		t.Fatal(err)
	}
	c := n.Conn("me", nil)
	if c.URL != "nats://env:4222" || c.User != "flag-user" || c.Password != "pw" || c.Name != "me" {
		t.Errorf("conn config %+v: want the env URL and password, the flag's user", c)
	}
	if l.Format != "json" || l.Level != "info" {
		t.Errorf("log flags %+v: want the flag's format, the default level", l)
	}
	if *d != 3*time.Second || *e != "kept" {
		t.Errorf("d = %s, e = %q: want 3s from the env, the default for an empty variable", *d, *e)
	}
	if attrs := n.LogAttrs(); strings.Contains(strings.Join(toStrings(attrs), " "), "pw") {
		t.Errorf("log attrs leak the password: %v", attrs)
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

// TestBadEnvValueIsAnError: a value the flag refuses is an error naming
// the variable, the value and the flag, not a silent default.
func TestBadEnvValueIsAnError(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		define      func(fs *flag.FlagSet)
	}{
		{"TASKWIRE_GRACE_PERIOD", "abc", func(fs *flag.FlagSet) { fs.Duration("grace-period", time.Second, "x (TASKWIRE_GRACE_PERIOD)") }},
		{"TASKWIRE_CONCURRENCY", "many", func(fs *flag.FlagSet) { fs.Int("concurrency", 4, "x (TASKWIRE_CONCURRENCY)") }},
		{"TASKWIRE_JSON", "perhaps", func(fs *flag.FlagSet) { fs.Bool("json", false, "x (TASKWIRE_JSON)") }},
		{"TASKWIRE_CONCURRENCY", "1.5", func(fs *flag.FlagSet) { fs.Int("concurrency", 4, "x (TASKWIRE_CONCURRENCY)") }},
	} {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			tc.define(fs)
			err := Parse(fs, nil, lookup(map[string]string{tc.name: tc.value}))
			if err == nil {
				t.Fatalf("%s=%s accepted", tc.name, tc.value)
			}
			if want := tc.name + `="` + tc.value + `"`; !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %s", err, want)
			}
			// The command line wins: the bad variable is not read.
			fs2 := flag.NewFlagSet("t", flag.ContinueOnError)
			fs2.SetOutput(io.Discard)
			tc.define(fs2)
			var name string
			fs2.VisitAll(func(f *flag.Flag) { name = f.Name })
			val := map[string]string{"grace-period": "2s", "concurrency": "2", "json": "true"}[name]
			if err := Parse(fs2, []string{"--" + name, val}, lookup(map[string]string{tc.name: tc.value})); err != nil {
				t.Errorf("with --%s given: %v", name, err)
			}
		})
	}
}

func lookup(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
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
