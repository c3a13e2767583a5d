package queue

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidQueue is wrapped by errors about queue names.
var ErrInvalidQueue = errors.New("queue: invalid queue name")

// ErrInvalidToken is wrapped by errors about other subject tokens (timer
// kinds and ids, task-instance ids, tries).
var ErrInvalidToken = errors.New("queue: invalid subject token")

// queueNameMaxLen is the longest valid queue name.
const queueNameMaxLen = 64

// ValidQueueName reports whether q is a valid queue name: 1 to 64 of
// [a-z0-9_-]. The error wraps [ErrInvalidQueue].
func ValidQueueName(q string) error {
	if q == "" {
		return fmt.Errorf("%w: empty", ErrInvalidQueue)
	}
	if len(q) > queueNameMaxLen {
		return fmt.Errorf("%w: %d characters, at most %d", ErrInvalidQueue, len(q), queueNameMaxLen)
	}
	for i := 0; i < len(q); i++ {
		b := q[i]
		if (b < 'a' || b > 'z') && (b < '0' || b > '9') && b != '_' && b != '-' {
			return fmt.Errorf("%w: %q has %q at %d, want [a-z0-9_-]", ErrInvalidQueue, q, b, i)
		}
	}
	return nil
}

// validToken reports whether s can be one NATS subject token: not empty, no
// dots, wildcards, whitespace or control characters.
func validToken(what, s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty %s", ErrInvalidToken, what)
	}
	if i := strings.IndexFunc(s, func(r rune) bool {
		return r == '.' || r == '*' || r == '>' || r <= ' ' || r == 0x7f
	}); i >= 0 {
		return fmt.Errorf("%w: %s %q has %q at %d", ErrInvalidToken, what, s, s[i], i)
	}
	return nil
}

// ActivitySubject is the subject activities for queue are published on.
func ActivitySubject(queue string) string { return "activity." + queue }

// BellSubject is the subject of queue's doorbell: the server republishes
// there the headers of every activity it stores on ActivitySubject(queue)
// (the ACTIVITIES stream's RePublish), after storing it.
func BellSubject(queue string) string { return "bell." + queue }

// DeadLetterSubject is the subject dead letters of queue are published on.
func DeadLetterSubject(queue string) string { return "deadletter." + queue }

// TimerSubject is the subject timers of kind are delivered on.
func TimerSubject(kind string) string { return "timer." + kind }

// timerScheduleSubject holds the pending schedule of one timer.
func timerScheduleSubject(kind, id string) string { return "timer.schedule." + kind + "." + id }

// ValidWorkerID checks a worker id: 1 to 128 of [A-Za-z0-9_=.-], so that it
// is a key of the workers bucket.
func ValidWorkerID(id string) error {
	if id == "" || len(id) > 128 {
		return fmt.Errorf("%w: worker id %q: want 1 to 128 characters", ErrInvalidToken, id)
	}
	for i, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '=' || r == '.'
		if !ok {
			return fmt.Errorf("%w: worker id %q has %q at %d: use [A-Za-z0-9_=.-]", ErrInvalidToken, id, r, i)
		}
	}
	return nil
}
