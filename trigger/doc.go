// Package trigger holds taskwire's built-in triggers: what a deferred task
// waits on, in Airflow 3's deferral model. A task defers by naming a
// trigger (a classpath and kwargs, activity.Trigger); the executor checks
// it with Normalize and records its stored form; a triggerer runs it with
// Start and, when it fires once, resumes the task into its next_method
// with the event's payload (or into "__fail__" with its error).
//
// # Kinds
//
// A classpath names a kind, ignoring case: the kind itself ("datetime"),
// taskwire's classpath ("taskwire.triggers.DateTime") or, for the kinds
// Airflow has, Airflow's classpath. Normalize sets Trigger.Kind.
//
//	kind       classpaths
//	datetime   taskwire.triggers.DateTime   airflow.triggers.temporal.DateTimeTrigger
//	timedelta  taskwire.triggers.TimeDelta  airflow.triggers.temporal.TimeDeltaTrigger
//	http       taskwire.triggers.HTTP       airflow.providers.http.triggers.http.HttpTrigger
//	file       taskwire.triggers.File       airflow.triggers.file.FileTrigger
//	event      taskwire.triggers.Event
//	airflow    taskwire.triggers.Airflow
//
// The Airflow classpaths take taskwire's kwargs below, not Airflow's.
//
// airflow runs an Airflow trigger class in the host's Python trigger
// runtime (Env.Python): kwargs {"classpath": "pkg.module.Class", "kwargs":
// {…the class's kwargs in Airflow's serde form…}}; the event payload is the
// class's first TriggerEvent payload, in serde form. Without Env.Python,
// Start fails.
//
// # Kwargs
//
// Kwargs arrive decoded from JSON or msgpack, so a number may be any Go
// integer or float type or a json.Number; a duration is a Go duration
// string ("90s", "1h30m") or a number of seconds. A null kwarg counts as
// absent. Any kwarg a kind does not take is an error, to catch typos.
//
// datetime fires at a point in time:
//
//	moment  required  RFC 3339 time with an offset or Z ("2026-01-02T03:04:05+02:00");
//	                  a naive time is an error. Stored in UTC, RFC 3339 with
//	                  nanoseconds: "2026-01-02T01:04:05Z".
//
// timedelta fires a duration after the task deferred:
//
//	delta   required  duration >= 0. Stored as a duration string ("1m30s").
//	moment  set by Normalize to now+delta (UTC). The wait is fixed when the task
//	                  defers: a triggerer that restarts does not restart it, and
//	                  normalizing the stored form again keeps its moment.
//
// Started, a timedelta trigger is a datetime trigger on its moment.
//
// http polls a URL until it answers as expected:
//
//	url            required  absolute http or https URL
//	method         "GET"     GET HEAD POST PUT PATCH DELETE (any case; stored upper case)
//	status         200       the expected response status, 100-599
//	body_contains  none      a string the response body (its first MiB) must contain
//	body           none      the request body
//	headers        none      map of header names to string values (stored canonical:
//	                         "Content-Type"); "Host" sets the request's host
//	interval       "5s"      the wait after each poll, at least 10ms
//	rate_key       URL host  the rate limit (Env.Limiter) every request counts against
//
// Each poll is one request through a retrying client
// (github.com/hashicorp/go-retryablehttp around Env.HTTPClient: up to 2
// quick retries on connection errors, 429 and 5xx, unless that status is
// the expected one), bounded to a minute. A poll that fails or answers
// otherwise is logged at debug and followed by the next.
//
// file waits for a path to exist:
//
//	path      required  a path or filepath.Glob pattern ("/data/in/*.csv"); a
//	                    relative one is relative to the triggerer's working directory
//	interval  "1s"      the wait after each look, at least 10ms
//	rate_key  none      the rate limit (Env.Limiter) each look counts against; none by
//	                    default (a local glob costs a few system calls; a network
//	                    share that must not be listed too often names one)
//
// event waits for a named event sent by an operator (Env.Events):
//
//	name  required  1-200 characters of A-Z a-z 0-9 _ . : -
//
// An event sent at or after the trigger's DeferredAt counts, even when it
// was sent before the triggerer started the trigger.
//
// Normalize returns the stored form with every default filled in and
// leaves the caller's Kwargs map alone; normalizing a stored form again
// returns it unchanged. Every error it returns wraps ErrInvalid and names
// the kind, the kwarg and what is wrong with it:
//
//	invalid trigger: datetime: kwarg "moment" "2026-01-02T03:04:05" has no time zone (a naive time): give an offset or Z
//
// A negative Timeout is an error too. Start does not apply Timeout; the
// triggerer does.
//
// # Events
//
// The payload of a fired trigger, by kind:
//
//	datetime, timedelta  {"moment": "<stored moment>", "fired_at": "<RFC 3339 nano, UTC>"}
//	http                 {"status": 200, "body": "<body, cut to 64 KiB>"}
//	file                 {"path": "<first match>", "matches": ["<every match, sorted>"]}
//	event                {"name": "<name>", "payload": <the event's payload>}
//
// An event trigger started with no Env.Events fires
// Event{Err: "no external event source"}.
//
// # Cost
//
// A timer kind costs one runtime timer and a few hundred bytes while it
// waits, and no goroutine, so a triggerer holds hundreds of thousands (see
// TestManyTimers for the measured figure). http and file triggers run one
// goroutine each, which exits promptly when stop is called. fire is called
// at most once per Start, never after stop has returned unless it had
// already begun, and always on a goroutine other than Start's caller.
package trigger
