// Package layering holds the test that keeps taskwire's dependencies
// pointing one way (see STYLE.md, "Layout"). It has no code of its own; run
//
//	go test ./internal/layering
//
// The rules, checked on every package of the module:
//
//   - Only queue speaks NATS: no package imports github.com/nats-io/nats.go
//     (or its jetstream package), and none calls the raw escape hatches
//     (Client.JetStream, Consumer.JetStream, Bucket.JetStream), except
//     queue, queue/queuetest and internal/natstest (real NATS servers for
//     tests). Test files are held to it too: a test that inspects or faults
//     the broker (a stream's state, a key's history, a deleted consumer, a
//     client with chosen credentials) does it through queue/queuetest.
//     Even the benchmark (internal/bench), which measures raw JetStream
//     round trips as the yardstick of taskwire's own figures, goes through
//     queue (Consumer.Fetch, PublishActivities, PublishTriggers).
//     nats-server is imported only by queue (the embedded server) and
//     internal/natstest in non-test code (tests may configure servers).
//   - protocol is a leaf: it imports no taskwire package.
//   - activity (the domain) imports no taskwire package.
//   - cmd/* only wires: a binary imports the standard library and taskwire
//     packages only (no third-party module: what needs one lives in a
//     library package) and has at most cmdLinesMax lines of non-test code.
//
// TestRulesCatchViolations feeds the checker a table of synthetic
// violations, one per rule, so a checker that no longer finds them fails.
package layering
