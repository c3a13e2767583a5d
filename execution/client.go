package execution

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/taskwire/taskwire/activity"
)

// Sentinels matched by *APIError.
var (
	ErrBadRequest   = errors.New("bad request")
	ErrUnauthorized = errors.New("unauthorized")
	ErrForbidden    = errors.New("forbidden")
	ErrNotFound     = errors.New("not found")
	ErrConflict     = errors.New("conflict")
	// ErrTooLarge: 413, a body or value over a limit the detail names (it
	// matches ErrBadRequest too); not retried.
	ErrTooLarge = errors.New("too large")
)

// APIError is an error answer of the API.
type APIError struct {
	Op     string
	Status int
	Code   string
	Detail string
	// Limit is the ErrorBody's limit in bytes (413 too_large); 0 when
	// the answer named none.
	Limit int64
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s: %d %s: %s", e.Op, e.Status, e.Code, e.Detail)
}

// Is matches the sentinel of the status.
func (e *APIError) Is(target error) bool {
	switch e.Status {
	case http.StatusRequestEntityTooLarge:
		return target == ErrBadRequest || target == ErrTooLarge
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return target == ErrBadRequest
	case http.StatusUnauthorized:
		return target == ErrUnauthorized
	case http.StatusForbidden:
		return target == ErrForbidden
	case http.StatusNotFound:
		return target == ErrNotFound
	case http.StatusConflict:
		return target == ErrConflict
	}
	return false
}

// StatusOf is the HTTP status an error of this client stands for, in the
// classes a caller answers by (as Airflow's supervisor reports a failed API
// call): 404, 403 (also for 401), 413, 400 (also 422), 409, and 500 for
// anything else (no answer, a server error). The worker's and the
// triggerer's answers to Airflow's runners both use it.
func StatusOf(err error) int {
	switch {
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrForbidden), errors.Is(err, ErrUnauthorized):
		return http.StatusForbidden
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, ErrConflict):
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

// ClientConfig configures a Client.
type ClientConfig struct {
	// URL of the executor, e.g. http://127.0.0.1:8080 (the /execution prefix is added).
	URL string
	// HTTPClient to use; default a pooled client with keep-alives.
	HTTPClient *http.Client
	// TLSConfig is the TLS configuration of the default client, e.g. the
	// RootCAs of an executor serving https with a private CA; ignored when
	// HTTPClient is set. Default the system's roots.
	TLSConfig *tls.Config
	// RetryMax bounds retries of a request on connection errors and 5xx; default 5.
	RetryMax int
	// RetryWaitMax caps the wait between retries; default 2s.
	RetryWaitMax time.Duration
	// IdleConnTimeout is how long the default client keeps a connection
	// with nothing to do before closing it; default
	// IdleConnTimeoutDefault. Ignored when HTTPClient is set.
	IdleConnTimeout time.Duration
	Logger          *slog.Logger
}

// IdleConnTimeoutDefault is ClientConfig.IdleConnTimeout's default. It is
// shorter than the executor's HTTP server timeouts (executor.HTTPIdleTimeout
// and executor.HTTPReadHeaderTimeout: the server closes a connection that
// was dialed and never used after the latter), so the client closes an idle
// connection before the server does, and does not send a request on one
// the server is closing: at 1,000 workers, a PATCH …/run on such a
// connection failed with EOF now and then. It is longer than a worker's
// heartbeat interval (5 s), so the connection of a running task's
// heartbeats is kept, not dialed (with TLS: a handshake) for each.
const IdleConnTimeoutDefault = 7 * time.Second

// headerReplayable marks a request as safe to send again (Go's transport
// then sends it again by itself on a new connection when a kept-alive one
// was closed under it before any answer): its value is not read.
const headerReplayable = "X-Idempotency-Key"

// Client calls the Execution API. It is safe for concurrent use.
type Client struct {
	base string
	hc   *retryablehttp.Client
}

// NewClient returns a Client for cfg.URL.
func NewClient(cfg ClientConfig) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("execution api url %q: want http(s)://host:port", cfg.URL)
	}
	hc := retryablehttp.NewClient()
	if cfg.HTTPClient != nil {
		hc.HTTPClient = cfg.HTTPClient
	} else {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 256
		t.IdleConnTimeout = IdleConnTimeoutDefault
		if cfg.IdleConnTimeout > 0 {
			t.IdleConnTimeout = cfg.IdleConnTimeout
		}
		if cfg.TLSConfig != nil {
			t.TLSClientConfig = cfg.TLSConfig.Clone()
		}
		hc.HTTPClient = &http.Client{Transport: t, Timeout: 30 * time.Second}
	}
	hc.RetryMax = 5
	if cfg.RetryMax > 0 {
		hc.RetryMax = cfg.RetryMax
	}
	hc.RetryWaitMin = 50 * time.Millisecond
	hc.RetryWaitMax = 2 * time.Second
	if cfg.RetryWaitMax > 0 {
		hc.RetryWaitMax = cfg.RetryWaitMax
	}
	hc.Logger = nil
	if cfg.Logger != nil {
		hc.Logger = retryLogger{cfg.Logger}
	}
	return &Client{base: strings.TrimRight(cfg.URL, "/") + "/execution", hc: hc}, nil
}

type retryLogger struct{ l *slog.Logger }

// Error logs a failed request as a warning, but a request its caller
// cancelled (a heartbeat in flight when its task ended) at debug level:
// under load that is most of them, and not news.
func (r retryLogger) Error(msg string, kv ...any) {
	for i := 1; i < len(kv); i += 2 {
		if err, ok := kv[i].(error); ok && errors.Is(err, context.Canceled) {
			r.l.Debug(msg, kv...)
			return
		}
	}
	r.l.Warn(msg, kv...)
}
func (r retryLogger) Info(msg string, kv ...any)  { r.l.Debug(msg, kv...) }
func (r retryLogger) Debug(msg string, kv ...any) { r.l.Debug(msg, kv...) }
func (r retryLogger) Warn(msg string, kv ...any)  { r.l.Warn(msg, kv...) }

// do sends one request; out (if not nil) receives the JSON answer. It returns
// the response header for token refresh.
func (c *Client) do(ctx context.Context, op, method, path, token string, in, out any) (http.Header, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("%s: encode: %w", op, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set(HeaderVersion, APIVersion)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if replayable(method, path) {
		req.Header.Set(headerReplayable, op)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("%s: read answer: %w", op, err)
	}
	if resp.StatusCode >= 300 {
		var eb ErrorBody
		_ = json.Unmarshal(data, &eb)
		if eb.Error == "" {
			eb.Error = http.StatusText(resp.StatusCode)
			eb.Detail = strings.TrimSpace(string(data))
		}
		return resp.Header, &APIError{Op: op, Status: resp.StatusCode, Code: eb.Error, Detail: eb.Detail, Limit: eb.Limit}
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.Header, fmt.Errorf("%s: decode answer: %w", op, err)
		}
	}
	return resp.Header, nil
}

// replayable reports whether a request may be sent twice with the effect
// of once: a PUT or DELETE, and …/run (the same worker asking again is
// answered as the first time). A PATCH …/state sent twice is answered 409
// the second time, so it is not; the client's retries (retryablehttp)
// still send it again, with a warning.
func replayable(method, path string) bool {
	return method == http.MethodPut || method == http.MethodDelete ||
		(method == http.MethodPatch && strings.HasSuffix(path, "/run"))
}

// Run marks the task instance running (PATCH task-instances/{id}/run) with
// the activity's workload token. A 409 (ErrConflict) means another worker
// owns the try or it is no longer queued: drop the activity.
func (c *Client) Run(ctx context.Context, workloadToken, tiID string, req RunRequest) (RunResponse, error) {
	var out RunResponse
	_, err := c.do(ctx, "run task "+tiID, http.MethodPatch, "/task-instances/"+url.PathEscape(tiID)+"/run", workloadToken, req, &out)
	return out, err
}

// Task returns a client acting for one task try with its execution token.
func (c *Client) Task(tiID, token string) *TaskClient {
	return &TaskClient{c: c, tiID: tiID, token: token}
}

// TaskClient acts for one task try. It keeps the execution token fresh from
// the server's Refreshed-API-Token header. Safe for concurrent use.
type TaskClient struct {
	c    *Client
	tiID string

	mu    sync.Mutex
	token string
}

// Token returns the current execution token.
func (t *TaskClient) Token() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.token
}

func (t *TaskClient) do(ctx context.Context, op, method, path string, in, out any) error {
	_, err := t.doHeader(ctx, op, method, path, in, out)
	return err
}

// doHeader is do, returning the answer's header.
func (t *TaskClient) doHeader(ctx context.Context, op, method, path string, in, out any) (http.Header, error) {
	h, err := t.c.do(ctx, op, method, path, t.Token(), in, out)
	if h != nil {
		if nt := h.Get(HeaderRefreshToken); nt != "" {
			t.mu.Lock()
			t.token = nt
			t.mu.Unlock()
		}
	}
	return h, err
}

func (t *TaskClient) tiPath(suffix string) string {
	return "/task-instances/" + url.PathEscape(t.tiID) + suffix
}

// State reports a new state (PATCH task-instances/{id}/state).
func (t *TaskClient) State(ctx context.Context, req StateRequest) error {
	return t.do(ctx, "set state "+string(req.State), http.MethodPatch, t.tiPath("/state"), req, nil)
}

// SkipDownstream skips tasks of the try's DAG run downstream of it (PATCH
// task-instances/{id}/skip-downstream).
func (t *TaskClient) SkipDownstream(ctx context.Context, tasks []SkipTask) error {
	return t.do(ctx, "skip downstream", http.MethodPatch, t.tiPath("/skip-downstream"), SkipDownstreamRequest{Tasks: tasks}, nil)
}

// GetState reads the task instance's own state and try (GET
// task-instances/{id}/state).
func (t *TaskClient) GetState(ctx context.Context) (TaskStateResponse, error) {
	var out TaskStateResponse
	err := t.do(ctx, "get state", http.MethodGet, t.tiPath("/state"), nil, &out)
	return out, err
}

// Heartbeat tells the executor the try is alive. ErrConflict means the task
// should be killed: it runs elsewhere or is no longer running.
func (t *TaskClient) Heartbeat(ctx context.Context, req HeartbeatRequest) error {
	_, err := t.HeartbeatRecorded(ctx, req)
	return err
}

// HeartbeatRecorded is Heartbeat; age is 0 when the executor wrote this
// heartbeat to the record, else the age of the one it recorded earlier
// (HeaderHeartbeatAge: it accepted this one without a write).
func (t *TaskClient) HeartbeatRecorded(ctx context.Context, req HeartbeatRequest) (age time.Duration, err error) {
	h, err := t.doHeader(ctx, "heartbeat", http.MethodPut, t.tiPath("/heartbeat"), req, nil)
	if err != nil || h == nil {
		return 0, err
	}
	if v := h.Get(HeaderHeartbeatAge); v != "" {
		ms, perr := strconv.ParseInt(v, 10, 64)
		if perr != nil || ms < 0 {
			return 0, fmt.Errorf("heartbeat: bad %s %q", HeaderHeartbeatAge, v)
		}
		return time.Duration(ms) * time.Millisecond, nil
	}
	return 0, nil
}

// Connection reads a connection.
func (t *TaskClient) Connection(ctx context.Context, connID string) (activity.Connection, error) {
	var out activity.Connection
	err := t.do(ctx, "get connection", http.MethodGet, "/connections/"+url.PathEscape(connID), nil, &out)
	return out, err
}

// Variable reads a variable.
func (t *TaskClient) Variable(ctx context.Context, key string) (VariableBody, error) {
	var out VariableBody
	err := t.do(ctx, "get variable", http.MethodGet, "/variables/"+url.PathEscape(key), nil, &out)
	return out, err
}

// PutVariable writes a variable.
func (t *TaskClient) PutVariable(ctx context.Context, key string, v VariableBody) error {
	return t.do(ctx, "put variable", http.MethodPut, "/variables/"+url.PathEscape(key), v, nil)
}

// DeleteVariable removes a variable.
func (t *TaskClient) DeleteVariable(ctx context.Context, key string) error {
	return t.do(ctx, "delete variable", http.MethodDelete, "/variables/"+url.PathEscape(key), nil, nil)
}

// XComKey addresses one XCom.
type XComKey struct {
	DagID, RunID, TaskID, Key string
	MapIndex                  int
}

// check refuses a key with a part an HTTP server would clean out of the
// path ("." or "..") or an empty one, before any request is sent.
func (k XComKey) check() error {
	for _, p := range [][2]string{{"dag_id", k.DagID}, {"run_id", k.RunID}, {"task_id", k.TaskID}, {"key", k.Key}} {
		if p[1] == "" || p[1] == "." || p[1] == ".." {
			return fmt.Errorf("%w: xcom %s %q cannot be a URL path segment", ErrBadRequest, p[0], p[1])
		}
	}
	return nil
}

func (k XComKey) path() string {
	return "/xcoms/" + url.PathEscape(k.DagID) + "/" + url.PathEscape(k.RunID) + "/" +
		url.PathEscape(k.TaskID) + "/" + url.PathEscape(k.Key) + "?map_index=" + strconv.Itoa(k.MapIndex)
}

// XCom reads an XCom; ErrNotFound when it does not exist.
// JSON numbers come back as int64 when they are whole and fit, else as
// float64, so a task that pushed 42 pulls 42 and not 42.0.
func (t *TaskClient) XCom(ctx context.Context, k XComKey) (any, error) {
	var out struct {
		Value json.RawMessage `json:"value"`
	}
	if err := k.check(); err != nil {
		return nil, err
	}
	if err := t.do(ctx, "get xcom", http.MethodGet, k.path(), nil, &out); err != nil {
		return nil, err
	}
	v, err := DecodeValue(out.Value)
	if err != nil {
		return nil, fmt.Errorf("get xcom: %w", err)
	}
	return v, nil
}

// DecodeValue decodes a JSON value as encoding/json does into an any, but
// with whole numbers that fit as int64 and others as float64.
func DecodeValue(raw json.RawMessage) (any, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("decode value: %w", err)
	}
	return numbers(v), nil
}

// numbers replaces the json.Numbers in v.
func numbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = numbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = numbers(e)
		}
	}
	return v
}

// SetXCom writes an XCom of the task itself.
func (t *TaskClient) SetXCom(ctx context.Context, k XComKey, value any) error {
	if err := k.check(); err != nil {
		return err
	}
	return t.do(ctx, "set xcom", http.MethodPost, k.path(), XComBody{Value: value}, nil)
}

// DeleteXCom removes an XCom of the task itself.
func (t *TaskClient) DeleteXCom(ctx context.Context, k XComKey) error {
	if err := k.check(); err != nil {
		return err
	}
	return t.do(ctx, "delete xcom", http.MethodDelete, k.path(), nil, nil)
}
