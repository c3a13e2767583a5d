package activity

import (
	"encoding/json"
	"fmt"
	"time"
)

// FailMethod is the next_method of a task resumed because its trigger
// failed or timed out: the task fails with the event's error without
// running user code (Airflow's "__fail__").
const FailMethod = "__fail__"

// TriggerEvent is what a fired trigger publishes on EVENTS (subject
// event.<ti_id>, Nats-Msg-Id the trigger id) for the executor to resume its
// task. Error set means the trigger failed (or timed out): the task resumes
// into FailMethod.
type TriggerEvent struct {
	TriggerID string `json:"trigger_id"`
	TIID      string `json:"ti_id"`
	Try       int    `json:"try"`
	Payload   any    `json:"payload,omitempty"`
	Error     string `json:"error,omitempty"`
	// End, when set (success, failed or skipped), ends the task in that
	// state without resuming it: the event of an Airflow trigger that
	// yielded TaskSuccessEvent, TaskFailedEvent or TaskSkippedEvent. XComs
	// are pushed for the task before it ends (the event's xcoms).
	End     State          `json:"end,omitempty"`
	XComs   map[string]any `json:"xcoms,omitempty"`
	FiredAt time.Time      `json:"fired_at"`
	// FiredBy names the triggerer (or "executor" for the timeout backstop).
	FiredBy string `json:"fired_by,omitempty"`
}

// DecodeTriggerEvent decodes and checks a TriggerEvent.
func DecodeTriggerEvent(b []byte) (*TriggerEvent, error) {
	var ev TriggerEvent
	if err := json.Unmarshal(b, &ev); err != nil {
		return nil, fmt.Errorf("%w: trigger event: %w", ErrInvalid, err)
	}
	if ev.TriggerID == "" || ev.TIID == "" || ev.Try < 1 {
		return nil, fmt.Errorf("%w: trigger event needs trigger_id, ti_id and try", ErrInvalid)
	}
	switch ev.End {
	case "", StateSuccess, StateFailed, StateSkipped:
	default:
		return nil, fmt.Errorf("%w: trigger event end %q: want success, failed or skipped", ErrInvalid, ev.End)
	}
	return &ev, nil
}

// ExternalEvent is a named event an operator sent (POST /api/v1/events/{name}
// or `executor event send`), as stored, the last one per name, in the
// external_events bucket. It fires every "event" trigger waiting on its
// name that deferred at or before SentAt.
type ExternalEvent struct {
	Name    string    `json:"name"`
	Payload any       `json:"payload,omitempty"`
	SentAt  time.Time `json:"sent_at"`
}

// maxEventNameLen bounds an external event's name.
const maxEventNameLen = 200

// ValidateEventName checks an external event's name: 1-200 characters of
// [A-Za-z0-9_.:-].
func ValidateEventName(name string) error {
	if name == "" || len(name) > maxEventNameLen {
		return invalid("event name %q must be 1-%d characters", CutValue(name), maxEventNameLen)
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == ':' || r == '-'
		if !ok {
			return invalid("event name %q: character %q not allowed, use [A-Za-z0-9_.:-]", CutValue(name), r)
		}
	}
	return nil
}
