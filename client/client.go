package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// RequestTimeoutDefault bounds a call whose context has no deadline.
const RequestTimeoutDefault = 30 * time.Second

// maxAnswer bounds a decoded answer; maxErrorBody an error answer.
const (
	maxAnswer    = 64 << 20
	maxErrorBody = 64 << 10
)

// Config configures a Client. Only URL is required.
type Config struct {
	// URL of the executor, e.g. http://127.0.0.1:8080 (a path prefix is
	// kept); the client adds /api/v1.
	URL string
	// Token is the operator token, sent as "Authorization: Bearer TOKEN";
	// empty sends no Authorization header.
	Token string
	// HTTPClient sends the requests; default a client with its own pooled
	// transport. Its Timeout, if any, also cuts followed log streams.
	HTTPClient *http.Client
	// TLSConfig is the TLS configuration of the default client, e.g. the
	// RootCAs of an executor serving https with a private CA; ignored when
	// HTTPClient is set. Default the system's roots.
	TLSConfig *tls.Config
	// RequestTimeout bounds each call whose context has no deadline, except
	// a followed log stream; default RequestTimeoutDefault.
	RequestTimeout time.Duration
}

// WithDefaults returns cfg with its zero fields set to their defaults.
func (cfg Config) WithDefaults() Config {
	if cfg.HTTPClient == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 16
		if cfg.TLSConfig != nil {
			t.TLSClientConfig = cfg.TLSConfig.Clone()
		}
		cfg.HTTPClient = &http.Client{Transport: t}
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = RequestTimeoutDefault
	}
	return cfg
}

func (cfg Config) validate() error {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("api url %q: want http(s)://host[:port]", cfg.URL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("api url %q: want no query or fragment", cfg.URL)
	}
	return nil
}

// Client calls the public API of a taskwire executor. It is safe for
// concurrent use.
type Client struct {
	base    string // …/api/v1
	token   string
	hc      *http.Client
	timeout time.Duration
}

// New returns a Client for cfg.URL. It sends nothing: the first call finds
// out whether the executor is reachable.
func New(cfg Config) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	return &Client{
		base:    strings.TrimRight(cfg.URL, "/") + "/api/v1",
		token:   cfg.Token,
		hc:      cfg.HTTPClient,
		timeout: cfg.RequestTimeout,
	}, nil
}

// withTimeout gives ctx the default deadline when it has none.
func (c *Client) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.timeout)
}

// send sends one request and returns the response of a 2xx answer, its body
// open; any other answer is returned as an *APIError.
func (c *Client) send(ctx context.Context, method, path string, query url.Values, in any, accept string) (*http.Response, error) {
	return c.sendHeader(ctx, method, path, query, in, accept, nil)
}

// sendHeader is send with extra request headers.
func (c *Client) sendHeader(ctx context.Context, method, path string, query url.Values, in any, accept string, hdr http.Header) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", accept)
	req.Header.Set("User-Agent", "taskwire-client")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp, nil
}

// decodeError makes the *APIError of an error answer; an answer that is not
// the API's JSON error body (a proxy's page) keeps its text as the detail.
func decodeError(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var body struct {
		Error  string `json:"error"`
		Detail string `json:"detail"`
	}
	if json.Unmarshal(data, &body) != nil || body.Error == "" {
		body.Error = strings.ToLower(strings.ReplaceAll(http.StatusText(resp.StatusCode), " ", "_"))
		if body.Error == "" {
			body.Error = "http_error"
		}
		body.Detail = strings.TrimSpace(string(data))
	}
	return &APIError{Status: resp.StatusCode, Code: body.Error, Detail: body.Detail}
}

// do sends a request with the default deadline and decodes a JSON answer
// into out (when not nil).
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	return c.doQueryHeader(ctx, method, path, query, in, out, nil)
}

// doHeader is do with extra request headers.
func (c *Client) doHeader(ctx context.Context, method, path string, in, out any, hdr http.Header) error {
	return c.doQueryHeader(ctx, method, path, nil, in, out, hdr)
}

func (c *Client) doQueryHeader(ctx context.Context, method, path string, query url.Values, in, out any, hdr http.Header) error {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	resp, err := c.sendHeader(ctx, method, path, query, in, "application/json", hdr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAnswer)).Decode(out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}

// pathID escapes one path segment, refusing an empty one (it would address
// a different route).
func pathID(what, id string) (string, error) {
	if id == "" {
		return "", fmt.Errorf("%w: empty %s", ErrBadRequest, what)
	}
	// An HTTP server cleans "." and ".." out of a path, escaped or not.
	if id == "." || id == ".." {
		return "", fmt.Errorf("%w: %s %q cannot be a URL path segment", ErrBadRequest, what, id)
	}
	return url.PathEscape(id), nil
}
