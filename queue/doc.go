// Package queue is the only package in taskwire that speaks JetStream.
//
// It owns the NATS layout described in DESIGN.md: the streams
// ACTIVITIES (work queue, one durable pull consumer "queue-<queue>" per
// queue, de-duplicated by Nats-Msg-Id), TRIGGERS (work queue), EVENTS,
// LOGS (limits retention with a maximum age), TIMERS (work queue with
// JetStream scheduled messages) and DEADLETTER, and the key-value buckets
// task_instances, xcom, variables, connections and config.
//
// [Connect] dials a NATS server with reconnect-forever semantics,
// [StartEmbedded] runs nats-server in-process for single-binary setups, and
// [New] provisions every stream and bucket idempotently and returns a
// [Client] through which the rest of taskwire publishes activities, timers,
// dead letters and logs, and reads and writes key-value state. [UpdateCAS]
// is the compare-and-set loop used for task-instance records.
//
// Subjects:
//
//	activity.<queue>                 activities for a queue (ACTIVITIES)
//	trigger.<...>                    triggers for the triggerer (TRIGGERS)
//	event.<ti_id>                    fired trigger events (EVENTS)
//	log.<ti_id>.<try>                task log lines (LOGS)
//	timer.<kind>                     due timers (TIMERS)
//	timer.schedule.<kind>.<id>       pending scheduled timers (TIMERS)
//	deadletter.<queue>               dead-lettered activities (DEADLETTER)
//
// Timers are JetStream scheduled messages (nats-server >= 2.12), so they
// survive restarts of every taskwire process. Their resolution is one
// second: a timer fires at the first whole second at or after its time.
package queue
