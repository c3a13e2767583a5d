package telemetry

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// RouteWarning is Route with standing warnings (an insecure setup, say)
// that /readyz prints on every answer, ready or not, one "warning: " line
// each.
func RouteWarning(mux *http.ServeMux, reg prometheus.Gatherer, warnings []string, ready ...ReadyFunc) {
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		status, line := http.StatusOK, "ready\n"
		for _, f := range ready {
			if err := f(); err != nil {
				status, line = http.StatusServiceUnavailable, fmt.Sprintf("not ready: %v\n", err)
				break
			}
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(line))
		for _, s := range warnings {
			_, _ = fmt.Fprintf(w, "warning: %s\n", s)
		}
	})
}
