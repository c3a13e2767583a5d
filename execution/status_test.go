package execution

import (
	"errors"
	"fmt"
	"testing"
)

// TestStatusOf: each API answer's status maps to the class callers answer
// Airflow's runners with; anything that is no API answer is 500.
func TestStatusOf(t *testing.T) {
	for in, want := range map[int]int{400: 400, 401: 403, 403: 403, 404: 404, 409: 409, 413: 413, 422: 400, 500: 500, 503: 500} {
		err := fmt.Errorf("wrapped: %w", &APIError{Op: "get", Status: in})
		if got := StatusOf(err); got != want {
			t.Errorf("StatusOf(%d answer) = %d, want %d", in, got, want)
		}
	}
	if got := StatusOf(errors.New("connection refused")); got != 500 {
		t.Errorf("StatusOf(no answer) = %d, want 500", got)
	}
}
