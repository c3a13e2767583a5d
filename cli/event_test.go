package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/taskwire/taskwire/activity"
)

func TestEventSend(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	payloadFile := filepath.Join(dir, "payload.json")
	if err := os.WriteFile(payloadFile, []byte("{\n  \"rows\": 12345678901234567890\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	blankFile := filepath.Join(dir, "blank.json")
	if err := os.WriteFile(blankFile, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		stdin    string
		wantCode int
		wantBody []string // the bodies the API got
		want     string   // stdout
		wantErr  string
	}{
		{"json_object", []string{"event", "send", "orders.ready", `{"day":"2026-11-22","n":3}`}, "", 0,
			[]string{`{"day":"2026-11-22","n":3}`}, "NAME SENT AT\norders.ready 2026-11-22T10:00:00Z", ""},
		{"json_number", []string{"event", "send", "n", "--", "-12.5e3"}, "", 0, []string{`-12.5e3`}, "", ""},
		{"json_string_kept", []string{"event", "send", "s", `"007"`}, "", 0, []string{`"007"`}, "", ""},
		{"plain_string", []string{"event", "send", "go", "hello, world"}, "", 0, []string{`"hello, world"`}, "", ""},
		{"no_payload", []string{"event", "send", "go"}, "", 0, []string{""}, "", ""},
		{"file", []string{"event", "send", "go", "--file", payloadFile}, "", 0,
			[]string{`{"rows":12345678901234567890}`}, "", ""},
		{"blank_file", []string{"event", "send", "go", "--file", blankFile}, "", 0, []string{""}, "", ""},
		{"stdin", []string{"event", "send", "go", "--file", "-"}, "[1, \"two\"]\n", 0, []string{`[1,"two"]`}, "", ""},
		{"json_out", []string{"event", "send", "go", "yes", "--json"}, "", 0, []string{`"yes"`},
			"{\n\"name\": \"go\",\n\"payload\": \"yes\",\n\"sent_at\": \"2026-11-22T10:00:00Z\"\n}", ""},
		{"bad_name", []string{"event", "send", "bad name", "x"}, "", 2, nil, "",
			`send event bad name: 400 bad_request: invalid activity: event name "bad name"`},
		{"stdin_not_json", []string{"event", "send", "go", "--file", "-"}, "not json", 2, nil, "", "--file -: the payload is not valid JSON"},
		{"missing_file", []string{"event", "send", "go", "--file", filepath.Join(dir, "nope")}, "", 2, nil, "", "no such file"},
		{"payload_and_file", []string{"event", "send", "go", "x", "--file", payloadFile}, "", 2, nil, "", "not both"},
		{"no_name", []string{"event", "send"}, "", 2, nil, "", "want NAME [PAYLOAD], got 0"},
		{"three_args", []string{"event", "send", "a", "b", "c"}, "", 2, nil, "", "got 3"},
		{"no_subcommand", []string{"event"}, "", 2, nil, "", "event: want a subcommand: send"},
		{"unknown_subcommand", []string{"event", "list"}, "", 2, nil, "", `event: unknown subcommand "list"; want send`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeAPI{final: activity.StateSuccess}
			c := newTestCLI(map[string]string{"TASKWIRE_API_URL": f.start(t)})
			c.stdin = strings.NewReader(tc.stdin)
			if code := c.runCLI(t, tc.args...); code != tc.wantCode {
				t.Errorf("exit status %d, want %d; stderr %s", code, tc.wantCode, c.errOut.String())
			}
			f.mu.Lock()
			got := f.events
			f.mu.Unlock()
			if strings.Join(got, "|") != strings.Join(tc.wantBody, "|") || len(got) != len(tc.wantBody) {
				t.Errorf("API got bodies %q, want %q", got, tc.wantBody)
			}
			if tc.want != "" {
				var lines []string
				for _, l := range strings.Split(strings.TrimRight(c.out.String(), "\n"), "\n") {
					lines = append(lines, strings.Join(strings.Fields(l), " "))
				}
				if out := strings.Join(lines, "\n"); out != tc.want {
					t.Errorf("stdout\n%s\nwant\n%s", out, tc.want)
				}
			}
			if !strings.Contains(c.errOut.String(), tc.wantErr) {
				t.Errorf("stderr %q does not contain %q", c.errOut.String(), tc.wantErr)
			}
		})
	}
}
