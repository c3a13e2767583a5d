// Package dashboard is taskwire's web dashboard: static HTML, CSS and
// JavaScript modules embedded in the binary (no build step, no assets from
// elsewhere), served by the executor at / and /ui/.
//
// The page holds no data of its own: it calls the executor's public API
// (/api/v1/…) from the browser, sending the operator token as a bearer
// header. The token is asked for when the API answers 401 and kept in the
// tab's sessionStorage, so serving the page needs no token and the API
// stays the one place that checks it.
//
// Views: queues (depth, running, deferred, finished and failed per
// minute), workers and triggerers with their state, task instances
// filterable by state, queue and DAG, and one task instance with its
// tries, its trigger, its logs (polled while it runs) and the actions
// cancel, retry, and drain for a worker.
package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed static
var static embed.FS

// Handler serves the dashboard: the page at / and /ui/, its files at
// /ui/<name>. Anything else is 404; methods other than GET and HEAD 405.
func Handler() http.Handler {
	files, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	fileServer := http.StripPrefix("/ui/", http.FileServerFS(files))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		setHeaders(w)
		p := path.Clean(r.URL.Path)
		switch {
		case p == "/" || p == "/ui":
			http.ServeFileFS(w, r, files, "index.html")
		case strings.HasPrefix(r.URL.Path, "/ui/"):
			if _, err := fs.Stat(files, strings.TrimPrefix(p, "/ui/")); err != nil {
				http.NotFound(w, r)
				return
			}
			fileServer.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}

// setHeaders keeps the page to its own assets and API, and out of frames.
func setHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
}
