// Package activity holds taskwire's domain: the typed activities the executor
// queues for workers (ExecuteTask and RunCallback, AIP-72's queue_activity
// kinds), the task-instance record the executor keeps, and the state machine
// every change of that record is checked against.
//
// It knows nothing of NATS or HTTP: the queue package carries activities as
// bytes and the executor stores records as bytes; both use Marshal/Decode here.
//
// State graph (Airflow 3's task-instance states):
//
//	queued → running → success | failed | skipped | up_for_retry | up_for_reschedule | deferred
//	deferred → queued (resume)      up_for_retry → queued (after the retry delay)
//	deferred → success | skipped (the trigger ended the task: end_from_trigger)
//	up_for_reschedule → queued (at the reschedule date, the same try)
//	queued | running | deferred | up_for_retry | up_for_reschedule → cancelled | removed (operator)
//	queued | deferred | up_for_retry | up_for_reschedule → failed (the executor gives up: deliveries
//	exhausted, trigger timeout with no triggerer, malformed activity)
//	failed | cancelled → queued (an operator retries a finished task as a new try)
//
// Any other change is refused with a *TransitionError matching ErrIllegalTransition.
package activity
