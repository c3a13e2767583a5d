package main

import (
	"os"
	"strings"
	"testing"

	"github.com/taskwire/taskwire/protocol"
)

func TestParseRuntimes(t *testing.T) {
	t.Parallel()
	got, err := parseRuntimes(
		[]string{"go=./bin/gotasks --comm {comm_addr}  --logs {logs_addr}", "py=python -m taskwire"},
		[]string{"py=json"})
	if err != nil {
		t.Fatal(err)
	}
	if a := strings.Join(got["go"].Command, "|"); a != "./bin/gotasks|--comm|{comm_addr}|--logs|{logs_addr}" {
		t.Errorf("go argv = %q", a)
	}
	if got["go"].Codec != protocol.CodecMsgpack || got["py"].Codec != protocol.CodecJSON {
		t.Errorf("codecs = %v, %v", got["go"].Codec, got["py"].Codec)
	}
	for _, c := range []struct {
		name           string
		rts, codecs    []string
		wantErrContain string
	}{
		{"no_equals", []string{"go"}, nil, "QUEUE=COMMAND"},
		{"empty_command", []string{"go= "}, nil, "QUEUE=COMMAND"},
		{"twice", []string{"go=a", "go=b"}, nil, "twice"},
		{"codec_without_runtime", nil, []string{"go=json"}, "for a queue with a --runtime"},
		{"bad_codec", []string{"go=a"}, []string{"go=xml"}, "--runtime-codec"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := parseRuntimes(c.rts, c.codecs); err == nil || !strings.Contains(err.Error(), c.wantErrContain) {
				t.Errorf("err = %v, want one containing %q", err, c.wantErrContain)
			}
		})
	}
}

func TestParseFlagsEnvFallback(t *testing.T) {
	t.Setenv("TASKWIRE_QUEUES", "a, b")
	t.Setenv("TASKWIRE_CONCURRENCY", "7")
	t.Setenv("TASKWIRE_RUNTIMES", "a=rt {comm_addr} {logs_addr};b=other")
	o, err := parseFlags([]string{"--concurrency", "9"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(o.cfg.Queues, ",") != "a,b" || o.cfg.Concurrency != 9 || len(o.cfg.Runtimes) != 2 {
		t.Errorf("options = %+v", o.cfg)
	}
	if _, err := parseFlags([]string{"--log-level", "loud"}); err == nil {
		t.Error("bad log level accepted")
	}
}

func TestParseFlagsConfigFile(t *testing.T) {
	dir := t.TempDir()
	file := dir + "/worker.yaml"
	if err := os.WriteFile(file, []byte("queues:\n  default:\n    runtime: command\n  py:\n    command: python3 t.py --comm {comm_addr}\n    codec: json\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o, err := parseFlags([]string{"--config", file})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(o.cfg.Queues, ",") != "default,py" || !o.cfg.RequireRuntimes || o.cfg.Runtimes["py"].Codec != protocol.CodecJSON {
		t.Errorf("options = %+v", o.cfg)
	}
	// --queues picks from the file; a queue not in it is refused when the
	// worker starts (worker.Config.RequireRuntimes).
	o, err = parseFlags([]string{"--config", file, "--queues", "py,other"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(o.cfg.Queues, ",") != "py,other" || len(o.cfg.Runtimes) != 1 {
		t.Errorf("options = %+v", o.cfg)
	}
	for _, args := range [][]string{
		{"--config", file, "--runtime", "x=y"},
		{"--config", dir + "/missing.yaml"},
	} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}

// TestParseFlagsBadEnv: a bad TASKWIRE_* value stops the worker at start
// with the variable named.
func TestParseFlagsBadEnv(t *testing.T) {
	t.Setenv("TASKWIRE_GRACE_PERIOD", "abc")
	_, err := parseFlags(nil)
	if err == nil || !strings.Contains(err.Error(), `TASKWIRE_GRACE_PERIOD="abc"`) {
		t.Fatalf("err = %v, want one naming TASKWIRE_GRACE_PERIOD=\"abc\"", err)
	}
}
