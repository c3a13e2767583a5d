package executor

import (
	"testing"
	"time"

	"github.com/taskwire/taskwire/execution"
)

// The Execution API client closes an idle connection before the server
// would: a request sent on a connection the server is closing fails (EOF).
func TestClientIdleTimeoutShorterThanTheServers(t *testing.T) {
	// A margin for a loaded machine: the server arms its timeout on
	// accepting, the client its own once the connection is in its pool.
	if d := execution.IdleConnTimeoutDefault; d+3*time.Second > min(HTTPReadHeaderTimeout, HTTPIdleTimeout) {
		t.Fatalf("client idle timeout %s, server header/idle timeouts %s/%s: want the client's 3s shorter at least",
			d, HTTPReadHeaderTimeout, HTTPIdleTimeout)
	}
}
