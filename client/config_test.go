package client_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"sort"
	"sync"
	"testing"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/client"
)

// store is an in-memory stand-in for the executor's variables and
// connections routes.
type store struct {
	mu    sync.Mutex
	vars  map[string]activity.Variable
	conns map[string]activity.Connection
}

func (s *store) routes() map[string]http.HandlerFunc {
	redact := func(c activity.Connection) activity.Connection {
		if c.Password != "" {
			c.Password = "***"
		}
		return c
	}
	return map[string]http.HandlerFunc{
		"GET /api/v1/variables": func(w http.ResponseWriter, r *http.Request) {
			s.mu.Lock()
			defer s.mu.Unlock()
			out := []activity.Variable{}
			for _, v := range s.vars {
				out = append(out, v)
			}
			sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
			writeJSON(w, 200, map[string]any{"variables": out})
		},
		"GET /api/v1/variables/{key}": func(w http.ResponseWriter, r *http.Request) {
			s.mu.Lock()
			defer s.mu.Unlock()
			v, ok := s.vars[r.PathValue("key")]
			if !ok {
				writeError(w, 404, "not_found", "variable "+r.PathValue("key"))
				return
			}
			writeJSON(w, 200, v)
		},
		"PUT /api/v1/variables/{key}": func(w http.ResponseWriter, r *http.Request) {
			var body struct{ Value, Description string }
			if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
				writeError(w, 400, "bad_request", err.Error())
				return
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			v := activity.Variable{Key: r.PathValue("key"), Value: body.Value, Description: body.Description}
			s.vars[v.Key] = v
			writeJSON(w, 200, v)
		},
		"DELETE /api/v1/variables/{key}": func(w http.ResponseWriter, r *http.Request) {
			s.mu.Lock()
			defer s.mu.Unlock()
			delete(s.vars, r.PathValue("key"))
			w.WriteHeader(204)
		},
		"GET /api/v1/connections": func(w http.ResponseWriter, r *http.Request) {
			s.mu.Lock()
			defer s.mu.Unlock()
			out := []activity.Connection{}
			for _, c := range s.conns {
				out = append(out, redact(c))
			}
			writeJSON(w, 200, map[string]any{"connections": out})
		},
		"GET /api/v1/connections/{id}": func(w http.ResponseWriter, r *http.Request) {
			s.mu.Lock()
			defer s.mu.Unlock()
			c, ok := s.conns[r.PathValue("id")]
			if !ok {
				writeError(w, 404, "not_found", "connection "+r.PathValue("id"))
				return
			}
			writeJSON(w, 200, redact(c))
		},
		"PUT /api/v1/connections/{id}": func(w http.ResponseWriter, r *http.Request) {
			var c activity.Connection
			if err := json.NewDecoder(r.Body).Decode(&c); err != nil || c.ConnID != r.PathValue("id") || c.ConnType == "" {
				writeError(w, 400, "bad_request", "connection needs conn_type, and conn_id equal to the path's")
				return
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			s.conns[c.ConnID] = c
			writeJSON(w, 200, redact(c))
		},
		"DELETE /api/v1/connections/{id}": func(w http.ResponseWriter, r *http.Request) {
			s.mu.Lock()
			defer s.mu.Unlock()
			delete(s.conns, r.PathValue("id"))
			w.WriteHeader(204)
		},
	}
}

func TestVariables(t *testing.T) {
	t.Parallel()
	s := &store{vars: map[string]activity.Variable{}, conns: map[string]activity.Connection{}}
	c := serve(t, "", s.routes())
	ctx := testContext(t)

	key := "team/greeting" // a slash travels escaped, as one path segment
	v, err := c.SetVariable(ctx, key, "hello", "says hello")
	if err != nil {
		t.Fatalf("SetVariable: %v", err)
	}
	want := activity.Variable{Key: key, Value: "hello", Description: "says hello"}
	if *v != want {
		t.Errorf("SetVariable = %+v, want %+v", v, want)
	}
	if v, err := c.Variable(ctx, key); err != nil || *v != want {
		t.Errorf("Variable = %+v, %v", v, err)
	}
	if vs, err := c.Variables(ctx); err != nil || !reflect.DeepEqual(vs, []activity.Variable{want}) {
		t.Errorf("Variables = %+v, %v", vs, err)
	}
	if err := c.DeleteVariable(ctx, key); err != nil {
		t.Fatalf("DeleteVariable: %v", err)
	}
	if _, err := c.Variable(ctx, key); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("Variable after delete: %v, want ErrNotFound", err)
	}
}

func TestConnections(t *testing.T) {
	t.Parallel()
	s := &store{vars: map[string]activity.Variable{}, conns: map[string]activity.Connection{}}
	c := serve(t, "", s.routes())
	ctx := testContext(t)

	conn := activity.Connection{ConnID: "db", ConnType: "postgres", Host: "db.internal", Port: 5432,
		Login: "app", Password: "s3cret", Extra: map[string]any{"sslmode": "require"}}
	want := conn
	want.Password = "***"
	got, err := c.SetConnection(ctx, conn)
	if err != nil || !reflect.DeepEqual(*got, want) {
		t.Fatalf("SetConnection = %+v, %v", got, err)
	}
	if s.conns["db"].Password != "s3cret" {
		t.Errorf("stored password %q, want the one sent", s.conns["db"].Password)
	}
	if got, err := c.Connection(ctx, "db"); err != nil || !reflect.DeepEqual(*got, want) {
		t.Errorf("Connection = %+v, %v", got, err)
	}
	if cs, err := c.Connections(ctx); err != nil || len(cs) != 1 || cs[0].Password != "***" {
		t.Errorf("Connections = %+v, %v", cs, err)
	}
	if _, err := c.SetConnection(ctx, activity.Connection{ConnID: "bad"}); !errors.Is(err, client.ErrBadRequest) {
		t.Errorf("SetConnection without a type: %v, want ErrBadRequest", err)
	}
	if err := c.DeleteConnection(ctx, "db"); err != nil {
		t.Fatalf("DeleteConnection: %v", err)
	}
	if _, err := c.Connection(ctx, "db"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("Connection after delete: %v, want ErrNotFound", err)
	}
}
