package activity

import (
	"errors"
	"testing"
	"time"
)

func TestCheckTransition(t *testing.T) {
	t.Parallel()
	allowed := map[[2]State]bool{}
	for _, e := range [][2]State{
		{StateQueued, StateRunning}, {StateQueued, StateCancelled}, {StateQueued, StateRemoved}, {StateQueued, StateFailed},
		{StateRunning, StateSuccess}, {StateRunning, StateFailed}, {StateRunning, StateSkipped},
		{StateRunning, StateUpForRetry}, {StateRunning, StateDeferred}, {StateRunning, StateCancelled}, {StateRunning, StateRemoved},
		{StateDeferred, StateQueued}, {StateDeferred, StateCancelled}, {StateDeferred, StateRemoved}, {StateDeferred, StateFailed},
		{StateDeferred, StateSuccess}, {StateDeferred, StateSkipped}, // end_from_trigger
		{StateRunning, StateUpForReschedule}, {StateUpForReschedule, StateQueued}, {StateUpForReschedule, StateCancelled},
		{StateUpForReschedule, StateRemoved}, {StateUpForReschedule, StateFailed},
		{StateUpForRetry, StateQueued}, {StateUpForRetry, StateCancelled}, {StateUpForRetry, StateRemoved}, {StateUpForRetry, StateFailed},
		{StateFailed, StateQueued}, {StateCancelled, StateQueued},
	} {
		allowed[e] = true
	}
	for _, from := range States {
		for _, to := range States {
			err := CheckTransition(from, to)
			if want := allowed[[2]State{from, to}]; (err == nil) != want {
				t.Errorf("CheckTransition(%s, %s) = %v, want allowed=%v", from, to, err, want)
			}
			if err != nil {
				var te *TransitionError
				if !errors.As(err, &te) || te.From != from || te.To != to || !errors.Is(err, ErrIllegalTransition) {
					t.Errorf("CheckTransition(%s, %s) error %v is not a matching *TransitionError", from, to, err)
				}
			}
		}
	}
}

func TestTerminalAndParse(t *testing.T) {
	t.Parallel()
	for _, s := range States {
		got, err := ParseState(string(s))
		if err != nil || got != s {
			t.Errorf("ParseState(%q) = %q, %v", s, got, err)
		}
	}
	if _, err := ParseState("runnin"); !errors.Is(err, ErrUnknownState) {
		t.Errorf("ParseState(runnin) err = %v, want ErrUnknownState", err)
	}
	for s, want := range map[State]bool{StateSuccess: true, StateFailed: true, StateSkipped: true, StateRemoved: true,
		StateCancelled: true, StateQueued: false, StateRunning: false, StateDeferred: false, StateUpForRetry: false} {
		if s.Terminal() != want {
			t.Errorf("%s.Terminal() = %v, want %v", s, !want, want)
		}
	}
}

func TestTaskInstanceLifecycle(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	spec := TaskSpec{Queue: "default", Entrypoint: Entrypoint{Command: []string{"/bin/true"}}, RetryPolicy: RetryPolicy{Retries: 1}}.WithDefaults(now)
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	ti := NewTaskInstance("ti1", spec, now)
	if ti.State != StateQueued || ti.TryNumber != 1 || ti.MaxTries != 2 || ti.MapIndex != -1 || ti.TaskID != "true" {
		t.Fatalf("new record = %+v", ti)
	}
	if got := ti.NextActivityID(); got != "ti1.1" {
		t.Errorf("NextActivityID = %q", got)
	}
	if err := ti.SetState(StateSuccess, "", now); !errors.Is(err, ErrIllegalTransition) {
		t.Fatalf("queued → success: err = %v, want illegal", err)
	}
	if ti.State != StateQueued {
		t.Fatalf("illegal transition changed state to %s", ti.State)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(ti.SetState(StateRunning, "", now))
	must(ti.SetState(StateUpForRetry, "exit code 1", now))
	if !ti.CanRetry() {
		t.Fatal("try 1 of 2 cannot retry")
	}
	must(ti.NewTry(now))
	if ti.TryNumber != 2 || ti.State != StateQueued || len(ti.Tries) != 2 || ti.Tries[0].Reason != "exit code 1" {
		t.Fatalf("after NewTry: %+v", ti)
	}
	must(ti.SetState(StateRunning, "", now))
	must(ti.SetState(StateDeferred, "", now))
	if err := ti.NewTry(now); !errors.Is(err, ErrIllegalTransition) {
		t.Fatalf("NewTry from deferred: err = %v, want illegal (a resume keeps its try)", err)
	}
	must(ti.SetState(StateQueued, "", now))
	must(ti.SetState(StateRunning, "", now))
	must(ti.SetState(StateSuccess, "", now))
	if ti.CanRetry() || ti.Tries[1].State != StateSuccess || ti.EndDate == nil {
		t.Fatalf("final record = %+v", ti)
	}
}

func TestRetryDelay(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		p    RetryPolicy
		next int
		want time.Duration
	}{
		{"default", RetryPolicy{}, 2, time.Second},
		{"fixed", RetryPolicy{Delay: Duration(5 * time.Second)}, 4, 5 * time.Second},
		{"exp_first", RetryPolicy{Delay: Duration(time.Second), Exponential: true}, 2, time.Second},
		{"exp_third", RetryPolicy{Delay: Duration(time.Second), Exponential: true}, 4, 4 * time.Second},
		{"exp_capped", RetryPolicy{Delay: Duration(time.Second), Exponential: true, MaxDelay: Duration(3 * time.Second)}, 10, 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.p.DelayFor(tc.next); got != tc.want {
				t.Errorf("DelayFor(%d) = %s, want %s", tc.next, got, tc.want)
			}
		})
	}
}
