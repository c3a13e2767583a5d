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
// [Client]. The rest of taskwire never imports nats.go: like river's
// riverdriver keeps pgx out of river's core, queue hands out taskwire's
// own types and the services speak in their words. One concept per file:
//
//	conn.go, connstate.go  connecting, readiness, metrics, draining ([Conn])
//	client.go              provisioning streams and buckets ([Client])
//	bucket.go, cas.go      key-value records: [Bucket], [Entry], [Watcher],
//	                       compare-and-set ([UpdateCAS], [IsConflict])
//	delivery.go            pulled and pushed messages: [Consumer], [Batch],
//	                       [Delivery] (Ack, Nak, InProgress, Term), [Subscription]
//	activity.go            activities: publish, consumers, doorbells, dead
//	                       letters, max-deliveries advisories, pending counts
//	trigger.go             triggers and fired events
//	timer.go               scheduled timers
//	registry.go            keys of the worker registry
//	log.go                 task log lines
//	bulk.go                many activities or triggers at once (backlogs, benchmarks)
//	connretry.go           waiting for NATS at start ([ConnectRetry])
//	embedded.go            the in-process server
//
// The hot path costs what it did with raw JetStream: a [Delivery] and an
// [Entry] are one-word values around nats.go's own, errors are nats.go's
// sentinels under taskwire's names ([ErrKeyNotFound], ...), so no
// translation or allocation is added; only a [Watcher] adds a goroutine
// (it forwards entries as taskwire's type). The raw escape hatches
// (Client.JetStream, Consumer.JetStream, Bucket.JetStream) are for
// queue/queuetest, the tests' broker-level inspections and faults;
// internal/layering fails when other code, tests included, uses them or
// imports nats.go.
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
