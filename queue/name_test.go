package queue_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/taskwire/taskwire/queue"
)

func TestValidQueueName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		queue string
		valid bool
	}{
		{"simple", "default", true},
		{"digits_dash_underscore", "gpu-2_x", true},
		{"single_char", "a", true},
		{"max_len", strings.Repeat("q", 64), true},
		{"empty", "", false},
		{"too_long", strings.Repeat("q", 65), false},
		{"upper", "Default", false},
		{"dot", "a.b", false},
		{"star", "a*", false},
		{"gt", ">", false},
		{"space", "a b", false},
		{"unicode", "é", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := queue.ValidQueueName(tt.queue)
			if got := err == nil; got != tt.valid {
				t.Fatalf("ValidQueueName(%q) = %v, want valid %v", tt.queue, err, tt.valid)
			}
			if err != nil && !errors.Is(err, queue.ErrInvalidQueue) {
				t.Fatalf("ValidQueueName(%q) = %v, want it to wrap ErrInvalidQueue", tt.queue, err)
			}
		})
	}
}

func TestActivitySubject(t *testing.T) {
	t.Parallel()
	if got, want := queue.ActivitySubject("default"), "activity.default"; got != want {
		t.Fatalf("ActivitySubject = %q, want %q", got, want)
	}
	if got, want := queue.LogSubject("ti1", 3), "log.ti1.3"; got != want {
		t.Fatalf("LogSubject = %q, want %q", got, want)
	}
}
