package sdk

import (
	"testing"

	"github.com/taskwire/taskwire/activity"
)

// The SDK's name for a failed trigger's resume is the executor's.
func TestFailMethodIsTheExecutors(t *testing.T) {
	if FailMethod != activity.FailMethod {
		t.Fatalf("sdk.FailMethod %q, activity.FailMethod %q", FailMethod, activity.FailMethod)
	}
}
