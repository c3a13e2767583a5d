package trigger

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/taskwire/taskwire/activity"
)

// Kwargs of the http kind ("interval" is shared with file).
const (
	kwURL          = "url"
	kwMethod       = "method"
	kwStatus       = "status"
	kwBodyContains = "body_contains"
	kwBody         = "body"
	kwHeaders      = "headers"
	kwInterval     = "interval"
	// kwRateKey names the rate limit the polls count against; default the
	// URL's host (host:port).
	kwRateKey = "rate_key"
)

// Defaults and limits of the http kind.
const (
	httpMethodDefault   = http.MethodGet
	httpStatusDefault   = http.StatusOK
	httpIntervalDefault = 5 * time.Second

	// httpBodyReadMax is how much of a response body a poll reads (and
	// looks for body_contains in).
	httpBodyReadMax = 1 << 20
	// httpBodyEventMax is how much of it the event carries.
	httpBodyEventMax = 64 << 10
	// httpPollTimeout bounds one poll, its retries included.
	httpPollTimeout = time.Minute

	// Retries within one poll (retryablehttp): connection errors, 429
	// and 5xx other than the expected status.
	httpRetryMax     = 2
	httpRetryWaitMin = 50 * time.Millisecond
	httpRetryWaitMax = 500 * time.Millisecond
)

var httpMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// httpSpec is a checked http trigger.
type httpSpec struct {
	url          string
	method       string
	status       int
	bodyContains string
	body         string
	headers      map[string]string // canonical keys
	interval     time.Duration
	rateKey      string // "" means the URL's host
}

func parseHTTP(kw map[string]any) (httpSpec, error) {
	const kind = KindHTTP
	s := httpSpec{method: httpMethodDefault, status: httpStatusDefault}
	v := kw[kwURL]
	if v == nil {
		return s, missing(kind, kwURL)
	}
	raw, err := stringArg(kind, kwURL, v)
	if err != nil {
		return s, err
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return s, kwargError(kind, kwURL, v, "is not a URL: %v", unwrapURLError(err))
	case u.Scheme != "http" && u.Scheme != "https":
		return s, kwargError(kind, kwURL, v, "is not an absolute http or https URL")
	case u.Hostname() == "":
		return s, kwargError(kind, kwURL, v, "has no host")
	}
	s.url = raw

	if v := kw[kwMethod]; v != nil {
		m, err := stringArg(kind, kwMethod, v)
		if err != nil {
			return s, err
		}
		s.method = strings.ToUpper(strings.TrimSpace(m))
		if !slices.Contains(httpMethods, s.method) {
			return s, kwargError(kind, kwMethod, v, "is not one of %s", strings.Join(httpMethods, " "))
		}
	}
	if v := kw[kwStatus]; v != nil {
		st, err := intArg(kind, kwStatus, v)
		if err != nil {
			return s, err
		}
		if st < 100 || st > 599 {
			return s, kwargError(kind, kwStatus, v, "is not an HTTP status (100-599)")
		}
		s.status = int(st)
	}
	if v := kw[kwBodyContains]; v != nil {
		if s.bodyContains, err = stringArg(kind, kwBodyContains, v); err != nil {
			return s, err
		}
		if s.bodyContains != "" && s.method == http.MethodHead {
			return s, kwargError(kind, kwBodyContains, v, "can never match: a HEAD response has no body")
		}
	}
	if v := kw[kwBody]; v != nil {
		if s.body, err = stringArg(kind, kwBody, v); err != nil {
			return s, err
		}
	}
	if v := kw[kwHeaders]; v != nil {
		if s.headers, err = headersArg(kind, kwHeaders, v); err != nil {
			return s, err
		}
	}
	if s.interval, err = intervalArg(kind, kw, httpIntervalDefault); err != nil {
		return s, err
	}
	if s.rateKey, err = rateKeyArg(kind, kw); err != nil {
		return s, err
	}
	return s, nil
}

// rateKeyArg is a polling kind's rate_key kwarg; "" when not given.
func rateKeyArg(kind string, kw map[string]any) (string, error) {
	v := kw[kwRateKey]
	if v == nil {
		return "", nil
	}
	key, err := stringArg(kind, kwRateKey, v)
	if err != nil {
		return "", err
	}
	if err := activity.ValidateRateKey(key); err != nil {
		return "", kwargError(kind, kwRateKey, v, "is not a rate key: 1-250 characters of [A-Za-z0-9_.:@-]")
	}
	return key, nil
}

// rateKeyOf is the rate key of an http trigger: rate_key, else the URL's
// host (with its port when it has one).
func (s httpSpec) rateKeyOf() string {
	if s.rateKey != "" {
		return s.rateKey
	}
	if u, err := url.Parse(s.url); err == nil {
		return u.Host
	}
	return ""
}

// unwrapURLError drops the *url.Error wrapper, which repeats the URL.
func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// headersArg reads a map of header names to string values, as
// map[string]any (JSON, msgpack), map[string]string or map[any]any with
// string keys. Names are canonicalized; two that canonicalize alike are an
// error.
func headersArg(kind, key string, v any) (map[string]string, error) {
	in := map[string]any{}
	switch x := v.(type) {
	case map[string]any:
		in = x
	case map[string]string:
		for k, s := range x {
			in[k] = s
		}
	case map[any]any:
		for k, s := range x {
			ks, ok := k.(string)
			if !ok {
				return nil, kwargError(kind, key, v, "has a key %v that is not a string", k)
			}
			in[ks] = s
		}
	default:
		return nil, kwargError(kind, key, v, "is not a map of header names to strings")
	}
	out := make(map[string]string, len(in))
	for _, name := range slices.Sorted(maps.Keys(in)) {
		val, ok := in[name].(string)
		if !ok {
			return nil, kwargError(kind, key, v, "has header %q whose value is not a string", name)
		}
		if !validHeaderName(name) {
			return nil, kwargError(kind, key, v, "has an invalid header name %q", name)
		}
		if !validHeaderValue(val) {
			return nil, kwargError(kind, key, v, "has header %q whose value holds control characters", name)
		}
		c := http.CanonicalHeaderKey(name)
		if _, dup := out[c]; dup {
			return nil, kwargError(kind, key, v, "names header %q twice", c)
		}
		out[c] = val
	}
	return out, nil
}

// validHeaderName reports whether name is an RFC 9110 token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue reports whether v has no control characters but tab.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// kwargs is the stored form: every default filled in, empty optional
// kwargs left out.
func (s httpSpec) kwargs() map[string]any {
	kw := map[string]any{
		kwURL:      s.url,
		kwMethod:   s.method,
		kwStatus:   s.status,
		kwInterval: s.interval.String(),
	}
	if s.bodyContains != "" {
		kw[kwBodyContains] = s.bodyContains
	}
	if s.body != "" {
		kw[kwBody] = s.body
	}
	if s.rateKey != "" {
		kw[kwRateKey] = s.rateKey
	}
	if len(s.headers) > 0 {
		h := make(map[string]any, len(s.headers))
		for k, v := range s.headers {
			h[k] = v
		}
		kw[kwHeaders] = h
	}
	return kw
}

func normalizeHTTP(kw map[string]any, _ time.Time) (map[string]any, error) {
	s, err := parseHTTP(kw)
	if err != nil {
		return nil, err
	}
	return s.kwargs(), nil
}

// httpTrigger is a started http trigger: one goroutine polling.
type httpTrigger struct {
	once
	spec   httpSpec
	client *retryablehttp.Client
	log    *slog.Logger
}

func startHTTP(env *Env, t activity.Trigger, fire func(Event)) (func(), error) {
	s, err := parseHTTP(t.Kwargs)
	if err != nil {
		return nil, err
	}
	if _, err := http.NewRequest(s.method, s.url, nil); err != nil {
		return nil, fmt.Errorf("%w: %s: kwarg %q %s: %v", ErrInvalid, KindHTTP, kwURL, show(s.url), err)
	}
	h := &httpTrigger{
		once: once{fn: fire},
		spec: s,
		log:  env.Logger.With("trigger_id", t.ID, "kind", KindHTTP),
	}
	hc := keepIdleClient(env.HTTPClient)
	if env.Limiter != nil {
		// Every request counts against the rate key, retries included.
		hc.Transport = limitedTransport{rt: hc.Transport, limiter: env.Limiter, key: s.rateKeyOf()}
	}
	h.client = &retryablehttp.Client{
		HTTPClient:   hc,
		Logger:       leveledLogger{h.log},
		RetryWaitMin: httpRetryWaitMin,
		RetryWaitMax: min(httpRetryWaitMax, s.interval),
		RetryMax:     httpRetryMax,
		CheckRetry:   h.checkRetry,
		Backoff:      retryablehttp.DefaultBackoff,
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
	}
	ctx, cancel := context.WithCancel(context.Background())
	go h.run(ctx)
	return func() {
		h.cancel()
		cancel()
	}, nil
}

// run polls at once and then every interval after a poll ends, until a
// poll matches or ctx is done.
func (h *httpTrigger) run(ctx context.Context) {
	wait := time.NewTimer(h.spec.interval)
	defer wait.Stop()
	for {
		if ev, ok := h.poll(ctx); ok {
			h.fire(ev)
			return
		}
		wait.Reset(h.spec.interval)
		select {
		case <-ctx.Done():
			return
		case <-wait.C:
		}
	}
}

// poll makes one request (with retryablehttp's retries) and reports the
// event when the response matches.
func (h *httpTrigger) poll(ctx context.Context) (Event, bool) {
	ctx, cancel := context.WithTimeout(ctx, httpPollTimeout)
	defer cancel()
	var body any
	if h.spec.body != "" {
		body = []byte(h.spec.body)
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, h.spec.method, h.spec.url, body)
	if err != nil { // checked at Start
		h.log.Debug("trigger poll: new request", "err", err)
		return Event{}, false
	}
	for k, v := range h.spec.headers {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := h.client.Do(req)
	if err != nil {
		if resp != nil { // PassthroughErrorHandler leaves it open
			resp.Body.Close()
		}
		if ctx.Err() == nil {
			h.log.Debug("trigger poll failed", "err", err)
		}
		return Event{}, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != h.spec.status {
		h.log.Debug("trigger poll: unexpected status", "status", resp.StatusCode, "want_status", h.spec.status)
		return Event{}, false
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, httpBodyReadMax))
	if err != nil {
		if ctx.Err() == nil {
			h.log.Debug("trigger poll: read body", "err", err)
		}
		return Event{}, false
	}
	if h.spec.bodyContains != "" && !bytes.Contains(b, []byte(h.spec.bodyContains)) {
		h.log.Debug("trigger poll: body does not contain body_contains", "status", resp.StatusCode, "body_bytes", len(b))
		return Event{}, false
	}
	return Event{Payload: map[string]any{"status": resp.StatusCode, "body": truncateUTF8(b, httpBodyEventMax)}}, true
}

// checkRetry retries as retryablehttp does by default (connection errors,
// 429, 5xx) except when the response has the expected status.
func (h *httpTrigger) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if err == nil && resp != nil && resp.StatusCode == h.spec.status {
		return false, nil
	}
	return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
}

// truncateUTF8 returns b cut to at most n bytes, not inside a UTF-8
// sequence, as a string.
func truncateUTF8(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	i := n
	for i > n-utf8.UTFMax+1 && i > 0 && !utf8.RuneStart(b[i]) {
		i--
	}
	return string(b[:i])
}

// keepIdleClient returns a copy of c whose CloseIdleConnections does
// nothing: retryablehttp calls it after every failed request, and the
// transport is shared with every other trigger (and the host).
func keepIdleClient(c *http.Client) *http.Client {
	cc := *c
	rt := cc.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	cc.Transport = keepIdleTransport{rt}
	return &cc
}

// limitedTransport makes each request wait for its rate key's limit.
type limitedTransport struct {
	rt      http.RoundTripper
	limiter Limiter
	key     string
}

func (t limitedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	release, err := t.limiter.Acquire(r.Context(), t.key)
	if err != nil {
		return nil, err
	}
	defer release()
	return t.rt.RoundTrip(r)
}

// keepIdleTransport hides its RoundTripper's CloseIdleConnections.
type keepIdleTransport struct{ rt http.RoundTripper }

func (t keepIdleTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return t.rt.RoundTrip(r)
}

// leveledLogger adapts a *slog.Logger to retryablehttp.LeveledLogger. A
// poller's failed requests are routine, so everything is logged at debug.
type leveledLogger struct{ l *slog.Logger }

func (a leveledLogger) Error(msg string, kv ...any) { a.l.Debug(msg, errKey(kv)...) }
func (a leveledLogger) Warn(msg string, kv ...any)  { a.l.Debug(msg, errKey(kv)...) }
func (a leveledLogger) Info(msg string, kv ...any)  { a.l.Debug(msg, errKey(kv)...) }
func (a leveledLogger) Debug(msg string, kv ...any) { a.l.Debug(msg, errKey(kv)...) }

// errKey renames retryablehttp's "error" attribute to our "err".
func errKey(kv []any) []any {
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i] == "error" {
			kv[i] = "err"
		}
	}
	return kv
}
