package worker

import (
	"fmt"
	"strings"
	"testing"

	"github.com/taskwire/taskwire/execution"
)

// TestAPIErrorNamesLimit checks that a 413 of the Execution API reaches the
// task's SDK as "too_large" with the limit as a number (the SDKs raise
// TooLarge / TaskwireTooLargeException naming it), and that other errors
// carry no limit.
func TestAPIErrorNamesLimit(t *testing.T) {
	t.Parallel()
	tooLarge := fmt.Errorf("set xcom big: %w", &execution.APIError{Op: "set xcom", Status: 413, Code: "too_large",
		Detail: "value exceeds the NATS max payload of 1048576 bytes", Limit: 1 << 20})
	r := apiError(tooLarge)
	if r.Error != "too_large" || r.Detail["limit"] != int64(1<<20) || !strings.Contains(r.Detail["message"].(string), "1048576") {
		t.Errorf("413: %+v, want too_large with limit 1048576", r)
	}
	r = apiError(&execution.APIError{Op: "get variable", Status: 404, Code: "not_found", Detail: "variable x"})
	if _, ok := r.Detail["limit"]; r.Error != "not_found" || ok {
		t.Errorf("404: %+v, want not_found without a limit", r)
	}
}
