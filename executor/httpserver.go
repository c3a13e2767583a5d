package executor

import "time"

// Timeouts of the HTTP server that serves Handler (cmd's serve, the bench).
// Clients keep connections idle for less than both (the Execution API
// client's execution.IdleConnTimeoutDefault, 7 s; the Airflow SDK's httpx,
// 5 s), so a server never closes a connection a client is about to use.
const (
	// HTTPReadHeaderTimeout bounds the reading of a request's header;
	// it also closes a connection that was dialed and never sent
	// anything (Go's server arms it on accepting), such as the spare one
	// a client's pool dials when another connection came free first.
	HTTPReadHeaderTimeout = 10 * time.Second
	// HTTPIdleTimeout closes a kept-alive connection that has waited this
	// long for its next request; without it an idle connection of a
	// client that never closes it is kept for ever.
	HTTPIdleTimeout = 2 * time.Minute
)
