package executor

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/execution"
	"github.com/taskwire/taskwire/queue"
)

func (e *Executor) routePublic(mux router) {
	h := func(pattern string, fn http.HandlerFunc) { mux.Handle(pattern, e.operatorAuth(fn)) }
	h("POST /api/v1/activities", e.needStorage(e.handleSubmit))
	h("GET /api/v1/task-instances", e.handleList)
	h("GET /api/v1/task-instances/{id}", e.handleGet)
	h("POST /api/v1/task-instances/{id}/cancel", e.handleCancel)
	h("POST /api/v1/task-instances/{id}/retry", e.handleRetry)
	h("GET /api/v1/task-instances/{id}/logs", e.handleLogs)
	h("POST /api/v1/logs/purge", e.handlePurgeLogs)
	h("GET /api/v1/variables", e.handleVariables)
	h("GET /api/v1/variables/{key}", e.serveVariable)
	h("PUT /api/v1/variables/{key}", e.needStorage(e.serveVariable))
	h("DELETE /api/v1/variables/{key}", e.serveVariable)
	h("GET /api/v1/connections", e.handleConnections)
	h("GET /api/v1/connections/{id}", e.handleConnection)
	h("PUT /api/v1/connections/{id}", e.needStorage(e.handleConnection))
	h("DELETE /api/v1/connections/{id}", e.handleConnection)
	h("POST /api/v1/events/{name}", e.handleSendEvent)
	h("GET /api/v1/xcoms/{dag_id}/{run_id}/{task_id}/{key}", e.handleGetXCom)
	e.routeRegistry(h)
	e.routeDags(h)
	e.routePools(h)
	e.routeRateLimits(h)
	h("/api/", e.apiFallback(mux))
}

// operatorAuth requires the operator token when one is configured.
func (e *Executor) operatorAuth(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e.cfg.OperatorToken != "" &&
			subtle.ConstantTimeCompare([]byte(bearer(r)), []byte(e.cfg.OperatorToken)) != 1 {
			e.writeError(w, r, fmt.Errorf("%w: the public API needs the operator token", errUnauthorized))
			return
		}
		next(w, r)
	})
}

func (e *Executor) handleSubmit(w http.ResponseWriter, r *http.Request) {
	var spec activity.TaskSpec
	if err := decodeBody(w, r, e.cfg.MaxBody, &spec); err != nil {
		e.writeError(w, r, err)
		return
	}
	// A header present but empty is a mistake (a variable the client did
	// not set), not "no key": refused, so its retries are not duplicates.
	if keys, ok := r.Header["Idempotency-Key"]; ok {
		ti, created, err := e.SubmitIdempotent(r.Context(), keys[0], spec)
		if err != nil {
			e.writeError(w, r, err)
			return
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		writeJSON(w, status, e.withAdmission(ti))
		return
	}
	ti, err := e.Submit(r.Context(), spec)
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, e.withAdmission(ti))
}

func (e *Executor) handleGet(w http.ResponseWriter, r *http.Request) {
	ti, err := e.store.get(r.Context(), r.PathValue("id"))
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, e.withAdmission(ti))
}

func (e *Executor) handleList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := Filter{Queue: q.Get("queue"), DagID: q.Get("dag_id"), Limit: 100}
	if s := q.Get("state"); s != "" {
		for _, name := range strings.Split(s, ",") {
			st, err := activity.ParseState(strings.TrimSpace(name))
			if err != nil {
				e.writeError(w, r, err)
				return
			}
			f.States = append(f.States, st)
		}
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			e.writeError(w, r, badRequest("limit %q: want a number ≥ 0", s))
			return
		}
		f.Limit = n
	}
	f.Cursor = q.Get("cursor")
	page, err := e.store.list(r.Context(), f)
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	if page.TIs == nil {
		page.TIs = []*activity.TaskInstance{}
	}
	for i, ti := range page.TIs {
		page.TIs[i] = e.withAdmission(ti)
	}
	out := map[string]any{"task_instances": page.TIs, "total": page.Total}
	if page.Next != "" {
		out["next_cursor"] = page.Next
	}
	writeJSON(w, http.StatusOK, out)
}

func (e *Executor) handleCancel(w http.ResponseWriter, r *http.Request) {
	ti, err := e.Cancel(r.Context(), r.PathValue("id"), "")
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ti)
}

// withTry adds "try" to a JSON object log line.
func withTry(line []byte, try int) []byte {
	line = bytes.TrimSpace(line)
	if len(line) >= 2 && line[0] == '{' {
		rest := line[1:]
		if len(bytes.TrimSpace(rest)) > 1 {
			return append([]byte(`{"try":`+strconv.Itoa(try)+`,`), rest...)
		}
		return []byte(`{"try":` + strconv.Itoa(try) + `}`)
	}
	b, _ := json.Marshal(map[string]any{"try": try, "event": string(line)})
	return b
}

func (e *Executor) handleVariables(w http.ResponseWriter, r *http.Request) {
	out := []activity.Variable{}
	err := e.eachSealed(r.Context(), e.vars, func(b []byte) {
		var v activity.Variable
		if json.Unmarshal(b, &v) == nil {
			out = append(out, v)
		}
	})
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	writeJSON(w, http.StatusOK, map[string]any{"variables": out})
}

// serveVariable serves GET/PUT/DELETE of one variable for both APIs.
func (e *Executor) serveVariable(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	if key == "" {
		e.writeError(w, r, badRequest("variable key is empty"))
		return
	}
	k := kvKey(key)
	switch r.Method {
	case http.MethodGet:
		data, err := e.getSealed(r.Context(), e.vars, k)
		if err != nil {
			e.writeError(w, r, kvErr("variable "+key, err))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(data)
	case http.MethodPut:
		var body execution.VariableBody
		if err := decodeBody(w, r, e.cfg.MaxBody, &body); err != nil {
			e.writeError(w, r, err)
			return
		}
		v := activity.Variable{Key: key, Value: body.Value, Description: body.Description}
		data, _ := json.Marshal(v)
		if err := e.putSealed(r.Context(), e.vars, k, data); err != nil {
			e.writeError(w, r, fmt.Errorf("put variable: %w", err))
			return
		}
		writeJSON(w, http.StatusOK, v)
	case http.MethodDelete:
		if err := e.vars.Delete(r.Context(), k); err != nil && !errors.Is(err, queue.ErrKeyNotFound) {
			e.writeError(w, r, fmt.Errorf("delete variable: %w", err))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func (e *Executor) getConnection(ctx context.Context, id string) (activity.Connection, error) {
	var c activity.Connection
	if id == "" {
		return c, badRequest("connection id is empty")
	}
	data, err := e.getSealed(ctx, e.conns, kvKey(id))
	if err != nil {
		return c, kvErr("connection "+id, err)
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("decode connection %s: %w", id, err)
	}
	return c, nil
}

// checkConnection checks the body of PUT connections/{id}: a conn_type,
// and the path's id as conn_id (filled in when left out).
func checkConnection(id string, c *activity.Connection) error {
	if c.ConnID == "" {
		c.ConnID = id
	}
	if c.ConnID != id || c.ConnType == "" {
		return badRequest("connection needs conn_type, and conn_id equal to the path's")
	}
	return nil
}

func redacted(c activity.Connection) activity.Connection { return c.Redacted() }

func (e *Executor) handleConnections(w http.ResponseWriter, r *http.Request) {
	out := []activity.Connection{}
	err := e.eachSealed(r.Context(), e.conns, func(b []byte) {
		var c activity.Connection
		if json.Unmarshal(b, &c) == nil {
			out = append(out, redacted(c))
		}
	})
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ConnID < out[j].ConnID })
	writeJSON(w, http.StatusOK, map[string]any{"connections": out})
}

func (e *Executor) handleConnection(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	switch r.Method {
	case http.MethodGet:
		c, err := e.getConnection(r.Context(), id)
		if err != nil {
			e.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, redacted(c))
	case http.MethodPut:
		var c activity.Connection
		if err := decodeBody(w, r, e.cfg.MaxBody, &c); err != nil {
			e.writeError(w, r, err)
			return
		}
		if err := checkConnection(id, &c); err != nil {
			e.writeError(w, r, err)
			return
		}
		data, _ := json.Marshal(c)
		if err := e.putSealed(r.Context(), e.conns, kvKey(id), data); err != nil {
			e.writeError(w, r, fmt.Errorf("put connection: %w", err))
			return
		}
		writeJSON(w, http.StatusOK, redacted(c))
	case http.MethodDelete:
		if err := e.conns.Delete(r.Context(), kvKey(id)); err != nil && !errors.Is(err, queue.ErrKeyNotFound) {
			e.writeError(w, r, fmt.Errorf("delete connection: %w", err))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// eachSealed calls fn with every live value of a bucket of sealed values,
// opened; a value that does not open is skipped with a warning.
func (e *Executor) eachSealed(ctx context.Context, kv queue.Bucket, fn func([]byte)) error {
	keys, err := kv.Keys(ctx)
	if err != nil {
		return err
	}
	for _, k := range keys {
		data, err := e.getSealed(ctx, kv, k)
		if errors.Is(err, ErrSealed) {
			e.log.Warn("skipping a value that does not open", "bucket", kv.Name(), "err", err)
			continue
		}
		if err != nil {
			continue
		}
		fn(data)
	}
	return nil
}

// jsonValue encodes an XCom value.
func jsonValue(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, badRequest("xcom value: %v", err)
	}
	return b, nil
}

// handleGetXCom is GET /api/v1/xcoms/{dag_id}/{run_id}/{task_id}/{key}
// (?map_index=N, default -1): an XCom value, for operators.
func (e *Executor) handleGetXCom(w http.ResponseWriter, r *http.Request) {
	dag, run, task, key := r.PathValue("dag_id"), r.PathValue("run_id"), r.PathValue("task_id"), r.PathValue("key")
	mapIndex := -1
	if s := r.URL.Query().Get("map_index"); s != "" {
		var err error
		if mapIndex, err = strconv.Atoi(s); err != nil {
			e.writeError(w, r, badRequest("map_index %q is not an integer", s))
			return
		}
	}
	ent, err := e.xcom.Get(r.Context(), xcomKey(dag, run, task, mapIndex, key))
	if err != nil {
		if mapped, ok := e.mappedXComJSON(r.Context(), dag, run, task, mapIndex, key); ok {
			w.Header().Set("Content-Type", "application/json")
			_, _ = fmt.Fprintf(w, `{"key":%q,"value":%s}`, key, mapped)
			return
		}
		e.writeError(w, r, kvErr("xcom "+key+" of "+dag+"/"+run+"/"+task, err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = fmt.Fprintf(w, `{"key":%q,"value":%s}`, key, ent.Value())
}
