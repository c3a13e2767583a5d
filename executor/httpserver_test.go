package executor

import (
	"testing"

	"github.com/taskwire/taskwire/execution"
)

// The Execution API client closes an idle connection before the server
// would: a request sent on a connection the server is closing fails (EOF).
func TestClientIdleTimeoutShorterThanTheServers(t *testing.T) {
	if d := execution.IdleConnTimeoutDefault; d*2 > min(HTTPReadHeaderTimeout, HTTPIdleTimeout) {
		t.Fatalf("client idle timeout %s, server header/idle timeouts %s/%s: want the client's at most half the server's",
			d, HTTPReadHeaderTimeout, HTTPIdleTimeout)
	}
}
