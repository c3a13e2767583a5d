package activity

import (
	"errors"
	"fmt"
)

// State is a task instance's state.
type State string

// Task-instance states.
const (
	StateQueued     State = "queued"
	StateRunning    State = "running"
	StateSuccess    State = "success"
	StateFailed     State = "failed"
	StateSkipped    State = "skipped"
	StateUpForRetry State = "up_for_retry"
	// StateUpForReschedule: a reschedule-mode sensor's try ended to run
	// again at RetryAt, as the same try (Airflow's up_for_reschedule).
	StateUpForReschedule State = "up_for_reschedule"
	StateDeferred        State = "deferred"
	StateRemoved         State = "removed"
	StateCancelled       State = "cancelled"
)

// States lists every state, in graph order.
var States = []State{StateQueued, StateRunning, StateSuccess, StateFailed, StateSkipped,
	StateUpForRetry, StateUpForReschedule, StateDeferred, StateRemoved, StateCancelled}

// ErrIllegalTransition is matched (errors.Is) by every *TransitionError.
var ErrIllegalTransition = errors.New("illegal state transition")

// ErrUnknownState is returned by ParseState for a name that is no state.
var ErrUnknownState = errors.New("unknown state")

// TransitionError reports a state change the graph does not allow.
type TransitionError struct {
	From, To State
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("illegal state transition %s → %s", e.From, e.To)
}

// Is makes errors.Is(err, ErrIllegalTransition) true.
func (e *TransitionError) Is(target error) bool { return target == ErrIllegalTransition }

var transitions = map[State][]State{
	StateQueued:          {StateRunning, StateCancelled, StateRemoved, StateFailed},
	StateRunning:         {StateSuccess, StateFailed, StateSkipped, StateUpForRetry, StateUpForReschedule, StateDeferred, StateCancelled, StateRemoved},
	StateUpForReschedule: {StateQueued, StateCancelled, StateRemoved, StateFailed},
	StateDeferred:        {StateQueued, StateCancelled, StateRemoved, StateFailed, StateSuccess, StateSkipped},
	StateUpForRetry:      {StateQueued, StateCancelled, StateRemoved, StateFailed},
	StateFailed:          {StateQueued},
	StateCancelled:       {StateQueued},
}

// CanTransition reports whether from → to is an edge of the state graph.
func CanTransition(from, to State) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// CheckTransition returns a *TransitionError unless from → to is allowed.
func CheckTransition(from, to State) error {
	if !CanTransition(from, to) {
		return &TransitionError{From: from, To: to}
	}
	return nil
}

// Terminal reports whether a task in state s will not run again by itself.
func (s State) Terminal() bool {
	switch s {
	case StateSuccess, StateFailed, StateSkipped, StateRemoved, StateCancelled:
		return true
	}
	return false
}

// Valid reports whether s is a known state.
func (s State) Valid() bool {
	for _, v := range States {
		if v == s {
			return true
		}
	}
	return false
}

// ParseState returns the state named s.
func ParseState(s string) (State, error) {
	st := State(s)
	if !st.Valid() {
		return "", fmt.Errorf("%w %q", ErrUnknownState, CutValue(s))
	}
	return st, nil
}
