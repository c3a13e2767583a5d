package dashboard_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/taskwire/taskwire/dashboard"
)

func TestHandler(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(dashboard.Handler())
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		name, method, path string
		status             int
		ctype, body        string
	}{
		{"page", "GET", "/", 200, "text/html", `<script type="module" src="/ui/app.js">`},
		{"page_under_ui", "GET", "/ui/", 200, "text/html", `id="token-dialog"`},
		{"module", "GET", "/ui/app.js", 200, "text/javascript", "import"},
		{"api_module", "GET", "/ui/api.js", 200, "text/javascript", "Authorization"},
		{"style", "GET", "/ui/app.css", 200, "text/css", ".badge"},
		{"icon", "GET", "/ui/favicon.svg", 200, "image/svg+xml", "<svg"},
		{"unknown_file", "GET", "/ui/nope.js", 404, "", ""},
		{"unknown_path", "GET", "/nope", 404, "", ""},
		{"escape", "GET", "/ui/../dashboard.go", 404, "", ""},
		{"post", "POST", "/", 405, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), tc.method, srv.URL+tc.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.status)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tc.ctype) {
				t.Errorf("content type %q, want %s", ct, tc.ctype)
			}
			if !strings.Contains(string(b), tc.body) {
				t.Errorf("body lacks %q:\n%.300s", tc.body, b)
			}
			if tc.status == 200 && !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") {
				t.Errorf("no content security policy keeping the page to its own assets")
			}
		})
	}
}

// The page must load nothing from elsewhere: no CDN, no remote fonts.
func TestNoRemoteAssets(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(dashboard.Handler())
	t.Cleanup(srv.Close)
	for _, p := range []string{"/", "/ui/app.js", "/ui/api.js", "/ui/dom.js", "/ui/overview.js", "/ui/task.js", "/ui/app.css"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: %d", p, resp.StatusCode)
		}
		for _, remote := range []string{"http://", "https://", "//cdn", "@import"} {
			if strings.Contains(string(b), remote) {
				t.Errorf("%s refers to %q: the dashboard must be self-contained", p, remote)
			}
		}
	}
}
