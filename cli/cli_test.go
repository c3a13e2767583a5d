package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testCLI is a cli writing to buffers, its environment env.
type testCLI struct {
	cli
	out, errOut bytes.Buffer
}

func newTestCLI(env map[string]string) *testCLI {
	tc := &testCLI{}
	tc.cli = cli{
		stdin: strings.NewReader(""), stdout: &tc.out, stderr: &tc.errOut,
		lookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
	}
	return tc
}

// runCLI runs the command line args and returns its exit status.
func (tc *testCLI) runCLI(t *testing.T, args ...string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	return tc.exitCode(tc.run(ctx, args))
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		want    int
		wantErr string // in stderr
	}{
		{"none", nil, 2, "usage: executor <command>"},
		{"unknown", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"help", []string{"help"}, 0, ""},
		{"dash_h", []string{"-h"}, 0, ""},
		{"submit_h", []string{"submit", "-h"}, 0, "usage: executor submit"},
		{"submit_bad_flag", []string{"submit", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{"submit_nothing", []string{"submit"}, 2, "want a command after --"},
		{"submit_dag_only", []string{"submit", "--dag-id", "d"}, 2, "--task-id T"},
		{"submit_both", []string{"submit", "--task", "x", "--", "echo"}, 2, "not both"},
		{"submit_bad_queue", []string{"submit", "--queue", "Big Queue", "--", "echo"}, 2, "queue \"Big Queue\" must match"},
		{"submit_bad_retries", []string{"submit", "--retries", "101", "--", "echo"}, 2, "retries 101 out of range"},
		{"submit_bad_env", []string{"submit", "--env", "novalue", "--", "echo"}, 2, "want KEY=VALUE"},
		{"get_no_id", []string{"get"}, 2, "want 1 argument(s) ID"},
		{"get_two_ids", []string{"get", "a", "b"}, 2, "got 2"},
		{"list_bad_state", []string{"list", "--state", "running,finished"}, 2, `unknown state "finished"`},
		{"list_bad_limit", []string{"list", "--limit", "0"}, 2, "--limit 0"},
		{"logs_bad_try", []string{"logs", "x", "--try", "-1"}, 2, "--try -1"},
		{"bad_url", []string{"get", "x", "--api-url", "localhost:8080"}, 2, "--api-url"},
		{"variables_none", []string{"variables"}, 2, "want a subcommand"},
		{"variables_unknown", []string{"variables", "put"}, 2, `unknown subcommand "put"`},
		{"variables_set_one_arg", []string{"variables", "set", "k"}, 2, "KEY VALUE"},
		{"connections_set_no_type", []string{"connections", "set", "db", "--host", "h"}, 2, "--type is required"},
		{"connections_bad_extra", []string{"connections", "set", "db", "--type", "t", "--extra", "[1]"}, 2, "--extra"},
		{"connections_h", []string{"connections", "-h"}, 0, ""},
		{"pools_unknown", []string{"pools", "resize"}, 2, `pools: unknown subcommand "resize"`},
		{"pools_set_no_name", []string{"pools", "set", "--slots", "2"}, 2, "want 1 argument(s) NAME"},
		{"pools_set_bad_name", []string{"pools", "set", "a b", "--slots", "2"}, 2, "pools set: "},
		{"pools_set_no_slots", []string{"pools", "set", "p"}, 2, "--slots N is required"},
		{"pools_list_extra", []string{"pools", "list", "p"}, 2, "want 0 argument(s)"},
		{"limits_unknown", []string{"limits", "show"}, 2, `limits: unknown subcommand "show"`},
		{"limits_delete_two", []string{"limits", "delete", "a", "b"}, 2, "want 1 argument(s) KEY"},
		{"limits_set_no_rps", []string{"limits", "set", "api.example.com"}, 2, "--rps R (> 0) is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newTestCLI(nil)
			if got := c.runCLI(t, tc.args...); got != tc.want {
				t.Errorf("exit status %d, want %d; stderr:\n%s", got, tc.want, c.errOut.String())
			}
			if !strings.Contains(c.errOut.String(), tc.wantErr) {
				t.Errorf("stderr %q does not contain %q", c.errOut.String(), tc.wantErr)
			}
		})
	}
}

func TestEnvFallback(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantURL string
		wantTok string
		wantErr string
	}{
		{"defaults", nil, nil, apiURLDefault, "", ""},
		{"env", map[string]string{"TASKWIRE_API_URL": "http://e:1", "TASKWIRE_OPERATOR_TOKEN": "t"}, nil, "http://e:1", "t", ""},
		{"flag_wins", map[string]string{"TASKWIRE_API_URL": "http://e:1"}, []string{"--api-url", "http://f:2"}, "http://f:2", "", ""},
		{"empty_env_is_unset", map[string]string{"TASKWIRE_API_URL": ""}, nil, apiURLDefault, "", ""},
		{"bad_env", map[string]string{"TASKWIRE_JSON": "maybe"}, nil, "", "", `TASKWIRE_JSON="maybe" (for --json)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newTestCLI(tc.env)
			fs := c.newFlagSet("test", "")
			var a apiFlags
			a.register(fs)
			_, _, err := c.parse(fs, tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parse error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.url != tc.wantURL || a.token != tc.wantTok {
				t.Errorf("url %q token %q, want %q %q", a.url, a.token, tc.wantURL, tc.wantTok)
			}
		})
	}
}

func TestParseMixesFlagsAndArguments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args     []string
		wantPos  []string
		wantJSON bool
	}{
		{[]string{"ID", "--json"}, []string{"ID"}, true},
		{[]string{"--json", "ID"}, []string{"ID"}, true},
		{[]string{"K", "--json", "V"}, []string{"K", "V"}, true},
		{[]string{"K", "--", "--json"}, []string{"K", "--json"}, false},
		{[]string{"K", "-"}, []string{"K", "-"}, false},
	}
	for _, tc := range tests {
		c := newTestCLI(nil)
		fs := c.newFlagSet("test", "")
		var a apiFlags
		a.register(fs)
		pos, _, err := c.parse(fs, tc.args)
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if strings.Join(pos, "|") != strings.Join(tc.wantPos, "|") || a.json != tc.wantJSON {
			t.Errorf("%q: positional %q json %v, want %q %v", tc.args, pos, a.json, tc.wantPos, tc.wantJSON)
		}
	}
}

// TestServeBadEnv: executor serve with a bad TASKWIRE_* value stops at
// start, exit status 2, naming the variable; nothing is started.
func TestServeBadEnv(t *testing.T) {
	t.Parallel()
	tc := newTestCLI(map[string]string{"TASKWIRE_SCAN_INTERVAL": "abc", "TASKWIRE_DATA_DIR": t.TempDir()})
	if code := tc.runCLI(t, "serve"); code != 2 {
		t.Fatalf("exit %d, want 2; stderr %s", code, tc.errOut.String())
	}
	if !strings.Contains(tc.errOut.String(), `TASKWIRE_SCAN_INTERVAL="abc" (for --scan-interval)`) {
		t.Errorf("stderr %q does not name the variable", tc.errOut.String())
	}
}
