package trigger

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/taskwire/taskwire/activity"
)

// The built-in trigger kinds.
const (
	KindDateTime  = "datetime"
	KindTimeDelta = "timedelta"
	KindHTTP      = "http"
	KindFile      = "file"
	KindEvent     = "event"
	// KindAirflow is an Airflow trigger class run by a Python trigger
	// runtime (Env.Python): kwargs {"classpath": "pkg.mod.Class",
	// "kwargs": {…Airflow's serde kwargs…}}.
	KindAirflow = "airflow"
)

// PythonTriggers runs Airflow trigger classes in a Python trigger runtime
// (a process supervised by the triggerer). Start has Start's contract.
type PythonTriggers interface {
	Start(t activity.Trigger, fire func(Event)) (stop func(), err error)
}

// ErrInvalid is wrapped by every error Normalize returns: an unknown kind or
// bad kwargs. The task that asked for such a trigger fails at defer time.
var ErrInvalid = errors.New("invalid trigger")

// Event is what a trigger reports once: a payload when it fired, or Err
// when it could not (its timeout passed, it failed for good). A task
// resumes into its next_method with Payload as the event, or into
// "__fail__" with Err.
type Event struct {
	Payload any    `json:"payload,omitempty"`
	Err     string `json:"error,omitempty"`
	// End and XComs: an Airflow trigger's TaskSuccessEvent,
	// TaskFailedEvent or TaskSkippedEvent, which ends the task in End
	// (see activity.TriggerEvent).
	End   activity.State `json:"end,omitempty"`
	XComs map[string]any `json:"xcoms,omitempty"`
}

// ExternalEvents is where "event" triggers wait for named events that
// operators send. Subscribe calls fn once with the payload of the first
// event named name that was sent at or after since (at once when one was
// sent already), unless cancel is called first.
type ExternalEvents interface {
	Subscribe(name string, since time.Time, fn func(payload any)) (cancel func())
}

// Env is what triggers get from their host (the triggerer).
type Env struct {
	// HTTPClient is used by "http" triggers (wrapped in a retrying client).
	// Default http.DefaultClient.
	HTTPClient *http.Client
	// Events serves "event" triggers; nil makes them fail with an Err event.
	Events ExternalEvents
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Python runs "airflow" triggers; nil makes them fail with an Err event.
	Python PythonTriggers
	// Limiter, when set, paces the requests of polling triggers by rate
	// key (shared by all triggerers: the triggerer's is in KV).
	Limiter Limiter
}

// Limiter paces requests by rate key. Acquire waits until a request under
// key may go (or ctx ends); the request calls release when it is done. A
// key without a limit goes at once.
type Limiter interface {
	Acquire(ctx context.Context, key string) (release func(), err error)
}

// Normalize checks t as a task asked for it and returns its stored form.
// See the package doc for the kinds and their kwargs.
func Normalize(t activity.Trigger, now time.Time) (activity.Trigger, error) {
	return normalize(t, now)
}

// Start starts a normalized trigger and calls fire exactly once with its
// event, from another goroutine, unless stop is called first (stop is
// idempotent and waits for nothing; after it returns fire is not called,
// or is already running). Timer kinds use one runtime timer and no
// goroutine while they wait; the others run one goroutine each. Start does
// not apply t.Timeout: the host does.
func Start(env *Env, t activity.Trigger, fire func(Event)) (stop func(), err error) {
	return start(env, t, fire)
}
