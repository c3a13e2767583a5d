package executor

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/queue"
)

// Connections and variables are sealed at rest: the raw KV entries hold no
// plain text of any field, the APIs read them back, a second executor with
// the same key reads them, and one with another key reads nothing.
func TestSecretsAreSealedAtRest(t *testing.T) {
	t.Parallel()
	key := []byte("0123456789abcdef0123456789abcdef-test-key")
	f := newFixture(t, queue.Config{}, Config{SecretKey: key})
	ctx := t.Context()
	put := func(path string, body any) {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPut, f.srv.URL+path, bytes.NewReader(b))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("PUT %s: %d", path, resp.StatusCode)
		}
	}
	put("/api/v1/connections/db", activity.Connection{ConnType: "postgres", Host: "db.internal", Login: "etl-user",
		Password: "hunter2-pw", Extra: map[string]any{"api_token": "tok-XYZ"}})
	put("/api/v1/variables/service_api_key", map[string]string{"value": "sk-live-123"})

	// Operators see the connection redacted: password and sensitive extras.
	resp, err := http.Get(f.srv.URL + "/api/v1/connections/db")
	if err != nil {
		t.Fatal(err)
	}
	var shown activity.Connection
	_ = json.NewDecoder(resp.Body).Decode(&shown)
	resp.Body.Close()
	if shown.Password != "***" || shown.Extra["api_token"] != "***" || shown.Login != "etl-user" {
		t.Errorf("public API shows %+v, want password and api_token redacted", shown)
	}

	plain := []string{"hunter2-pw", "tok-XYZ", "etl-user", "db.internal", "sk-live-123", "postgres"}
	for _, kv := range []struct{ bucket, key string }{{queue.BucketConnections, kvKey("db")}, {queue.BucketVariables, kvKey("service_api_key")}} {
		ent, err := f.q.Bucket(kv.bucket).Get(ctx, kv.key)
		if err != nil {
			t.Fatal(err)
		}
		raw := ent.Value()
		if !bytes.HasPrefix(raw, sealedPrefix) {
			t.Errorf("%s entry is not sealed: %q", kv.bucket, raw)
		}
		for _, p := range plain {
			if bytes.Contains(raw, []byte(p)) {
				t.Errorf("%s entry holds %q in plain text", kv.bucket, p)
			}
		}
	}

	// Read back by the task-facing API, through the same executor and
	// through a second one with the same key.
	ti, tc := f.running(taskSpec("q", "d", "r", "t"))
	f2 := startOn(t, f.q, Config{SecretKey: key})
	for i, ex := range []*fixture{f, f2} {
		c := ex.ec.Task(ti.ID, tc.Token())
		conn, err := c.Connection(ctx, "db")
		if err != nil || conn.Password != "hunter2-pw" || conn.Extra["api_token"] != "tok-XYZ" {
			t.Errorf("executor %d: connection %+v, %v", i+1, conn, err)
		}
		if v, err := c.Variable(ctx, "service_api_key"); err != nil || v.Value != "sk-live-123" {
			t.Errorf("executor %d: variable %+v, %v", i+1, v, err)
		}
	}

	// Another key opens nothing: a clear error, no garbage.
	f3 := startOn(t, f.q, Config{SecretKey: []byte(strings.Repeat("k", 32))})
	if _, err := f3.ex.getConnection(ctx, "db"); !errors.Is(err, ErrSealed) {
		t.Errorf("connection under another key: %v, want ErrSealed", err)
	}

	// A value stored in plain text before sealing is still read, and
	// sealed when next written.
	legacy, _ := json.Marshal(activity.Connection{ConnID: "old", ConnType: "http", Password: "legacy-pw"})
	if _, err := f.q.Bucket(queue.BucketConnections).Put(ctx, kvKey("old"), legacy); err != nil {
		t.Fatal(err)
	}
	if c, err := f.ex.getConnection(ctx, "old"); err != nil || c.Password != "legacy-pw" {
		t.Errorf("legacy connection: %+v, %v", c, err)
	}
}

func TestSealerRefusesChangedValues(t *testing.T) {
	t.Parallel()
	s, err := newSealer([]byte(strings.Repeat("s", 32)))
	if err != nil {
		t.Fatal(err)
	}
	sealed := s.seal("connections", "a", []byte(`{"password":"x"}`))
	if got, err := s.open("connections", "a", sealed); err != nil || string(got) != `{"password":"x"}` {
		t.Fatalf("open: %q, %v", got, err)
	}
	if _, err := s.open("connections", "b", sealed); !errors.Is(err, ErrSealed) {
		t.Errorf("moved to another key: %v, want ErrSealed", err)
	}
	flipped := append([]byte(nil), sealed...)
	flipped[len(flipped)-1] ^= 1
	if _, err := s.open("connections", "a", flipped); !errors.Is(err, ErrSealed) {
		t.Errorf("changed: %v, want ErrSealed", err)
	}
	if _, err := s.open("connections", "a", sealedPrefix); !errors.Is(err, ErrSealed) {
		t.Errorf("truncated: %v, want ErrSealed", err)
	}
	if _, err := newSealer([]byte("short")); err == nil {
		t.Error("a short key was accepted")
	}
	if bytes.Equal(s.seal("c", "a", []byte("v")), s.seal("c", "a", []byte("v"))) {
		t.Error("two seals of one value are equal: the nonce is not random")
	}
}
