// Package executor is taskwire's scheduler-side service: the only writer of
// task-instance state.
//
// It accepts queue_activity calls (Submit, or POST /api/v1/activities),
// records a queued task instance in the task_instances KV bucket and
// publishes an ExecuteTask activity on activity.<queue>. It serves the
// Execution API under /execution/ to workers, acting for one task try per
// JWT, the public API under /api/v1/ to operators (who may also retry a
// failed task as a new try), and the web dashboard (package dashboard) at /.
// It runs retries with exponential backoff as JetStream scheduled messages
// (so a restart loses no timer), queues RunCallback activities when a task
// reaches a state with a callback, fails tasks whose activity exhausted its
// JetStream deliveries, and finds zombies (running tasks with no heartbeat)
// and tasks past their execution timeout.
//
// Every change of a record is a compare-and-set on its KV revision checked
// against the state graph of package activity, so several executors on one
// NATS never corrupt a record: the loser of a race re-reads and re-checks.
// Each executor keeps a read cache of all records fed by a KV watch; lists
// and scans read it, every write goes to KV.
//
// Security: task tokens are HS256 JWTs (subject the task instance, a try
// claim, an audience per kind) signed with a key shared through the config
// bucket or given in Config.SigningKey; the public API needs
// Config.OperatorToken when it is set. Connections and variables are sealed
// at rest with AES-256-GCM (key from Config.SecretKey, else shared through
// the config bucket), bound to their bucket and key, and returned to a task
// only through its token; the public API redacts connection passwords.
//
// Both APIs are described by an OpenAPI 3.1 document, openapi.yaml,
// embedded and served at GET /api/v1/openapi.json (OpenAPI). openapi_test.go
// keeps it true: every route registered is documented and every documented
// operation registered, and every body schema matches the Go type its
// handler decodes or answers; integration.TestSchemathesis fuzzes a live
// executor from it.
package executor
