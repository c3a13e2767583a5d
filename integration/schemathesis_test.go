package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/execution"
	"github.com/taskwire/taskwire/internal/natstest"
	"github.com/taskwire/taskwire/internal/testbin"
	"github.com/taskwire/taskwire/queue"
)

// schemathesisExamples bounds the fuzzing: test cases per operation and
// phase (TASKWIRE_SCHEMATHESIS_EXAMPLES overrides it for a longer run).
const schemathesisExamples = 5

// schemathesisChecks are the checks run on every answer.
const schemathesisChecks = "not_a_server_error,status_code_conformance,content_type_conformance," +
	"response_headers_conformance,response_schema_conformance,negative_data_rejection,unsupported_method,allow_header_conformance"

// TestSchemathesis fuzzes a live executor (the real binary on a real NATS
// server) from its own OpenAPI document with schemathesis, installed
// (pinned) into the repository's .venv/ by scripts/schemathesis.sh. The
// public API gets the operator token; the Execution API gets the workload
// token of a queued task and the execution token of a running one, and its
// task-instance and XCom paths name that task, so the handlers are reached
// past authentication. Any finding (a 5xx, an undocumented status, an
// answer or header not matching its schema, bad input accepted) fails.
// Nothing in it is timed (the zombie threshold is an hour, each request
// has 20 s): it runs beside the other parallel tests.
func TestSchemathesis(t *testing.T) {
	parallel(t, shared)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	ictx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ictx, filepath.Join(root, "scripts", "schemathesis.sh"), "--install-only").CombinedOutput()
	if err != nil {
		t.Fatalf("install schemathesis (scripts/schemathesis.sh): %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	st := lines[len(lines)-1]

	const operatorToken = "fuzz-operator-token"
	c := newCluster(t, clusterOpts{plain: true, operatorToken: operatorToken, zombieThreshold: "1h", logLevel: "info"})
	ctx := t.Context()
	qc, err := queue.New(ctx, natstest.Connect(t, c.nats), queue.Config{})
	if err != nil {
		t.Fatal(err)
	}
	// A running task whose execution token the Execution API calls carry,
	// and a queued one whose workload token …/run carries.
	running := c.submit(activity.TaskSpec{Queue: "fuzz-running", Entrypoint: sh("true"), DagID: "fuzz_dag", TaskID: "fuzz_task"})
	act := activityOf(t, qc, "fuzz-running")
	ec, err := execution.NewClient(execution.ClientConfig{URL: c.apiURL, RetryMax: 1})
	if err != nil {
		t.Fatal(err)
	}
	rr, err := ec.Run(ctx, act.Token, running.ID, execution.RunRequest{Hostname: "fuzz", PID: 1, WorkerID: "fuzz-1", ActivityID: act.ID})
	if err != nil {
		t.Fatal(err)
	}
	tc := ec.Task(running.ID, rr.Token)
	if err := tc.PutVariable(ctx, "fuzz_var", execution.VariableBody{Value: "v"}); err != nil {
		t.Fatal(err)
	}
	// PATCH …/state ends a try: it acts on a task of its own, so that the
	// other Execution API calls are not all refused (403) once it ran.
	ending := c.submit(activity.TaskSpec{Queue: "fuzz-ending", Entrypoint: sh("true")})
	actE := activityOf(t, qc, "fuzz-ending")
	rrE, err := ec.Run(ctx, actE.Token, ending.ID, execution.RunRequest{Hostname: "fuzz", PID: 2, WorkerID: "fuzz-2", ActivityID: actE.ID})
	if err != nil {
		t.Fatal(err)
	}
	queued := c.submit(activity.TaskSpec{Queue: "fuzz-queued", Entrypoint: sh("true")})
	actQ := activityOf(t, qc, "fuzz-queued")
	if _, err := c.api.SetConnection(ctx, activity.Connection{ConnID: "fuzz_conn", ConnType: "http", Host: "h", Password: "pw"}); err != nil {
		t.Fatal(err)
	}

	// A worker and a triggerer, so the registry's answers have entries and
	// the drain of a worker reaches one.
	const workerID = "fuzz-worker"
	c.startWorker(workerOpts{name: workerID, queues: "fuzzw", extra: []string{"--worker-id", workerID}})
	c.startTriggerer(triggererOpts{name: "fuzz-triggerer"})
	testbin.Eventually(t, 30*time.Second, "worker and triggerer registered", func() bool {
		ws, werr := c.api.Workers(ctx)
		ts, terr := c.api.Triggerers(ctx)
		return werr == nil && terr == nil && len(ws) == 1 && len(ts) == 1
	})

	n := schemathesisExamples
	if s := os.Getenv("TASKWIRE_SCHEMATHESIS_EXAMPLES"); s != "" {
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			t.Fatalf("TASKWIRE_SCHEMATHESIS_EXAMPLES=%q: want a number ≥ 1", s)
		}
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "schemathesis.toml")
	q := strconv.Quote
	toml := fmt.Sprintf(`[auth.openapi.operatorToken]
bearer = %s
[auth.openapi.workloadToken]
bearer = %s
[auth.openapi.executionToken]
bearer = %s

[[operations]]
include-operation-id = ["getTaskInstanceState", "heartbeatTaskInstance"]
parameters = { "path.id" = %s }

[[operations]]
include-operation-id = "setTaskInstanceState"
parameters = { "path.id" = %s }
headers = { Authorization = %s }

[[operations]]
include-path-regex = "^/execution/task-instances/\\{id\\}/run$"
parameters = { "path.id" = %s }

# Streams that last until their task (or run) is finished: the watches are not fuzzed,
# logs only without follow (both are covered by the Go tests).
[[operations]]
include-operation-id = "watchTaskInstance"
enabled = false

[[operations]]
include-operation-id = "watchRun"
enabled = false

[[operations]]
include-operation-id = "getTaskInstanceLogs"
parameters = { "query.follow" = "false" }

[[operations]]
include-operation-id = "drainWorker"
parameters = { "path.id" = %s }

[[operations]]
include-path-regex = "^/execution/xcoms/"
parameters = { "path.dag_id" = %s, "path.run_id" = %s, "path.task_id" = %s }
`, q(operatorToken), q(actQ.Token), q(rr.Token), q(running.ID), q(ending.ID), q("Bearer "+rrE.Token), q(queued.ID), q(workerID),
		q(running.DagID), q(running.RunID), q(running.TaskID))
	if err := os.WriteFile(cfg, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	// A bound for a hang: the run takes 1–4 minutes, beside the other
	// parallel tests at a load of 45 it took over 8.
	rctx, rcancel := context.WithTimeout(ctx, 15*time.Minute)
	defer rcancel()
	cmd := exec.CommandContext(rctx, st, "--no-color", "--config-file", cfg, "run", c.apiURL+"/api/v1/openapi.json",
		"--checks", schemathesisChecks, "--max-examples", strconv.Itoa(n), "--seed", "1",
		// One worker: with more, Hypothesis (its lambda descriptions, in
		// threads) trips "AST constructor recursion depth mismatch" on
		// Python 3.11.
		"--workers", "1", "--request-timeout", "20", "--generation-database", "none",
		"--report", "junit", "--report-dir", dir)
	cmd.Dir = dir
	start := time.Now()
	out, err = cmd.CombinedOutput()
	testbin.Account(t, "schemathesis", cmd.ProcessState)
	t.Logf("schemathesis: %d examples per operation, %s", n, time.Since(start).Round(time.Second))
	if err != nil {
		t.Fatalf("schemathesis found problems (%v); reproduce with scripts/schemathesis.sh, see README:\n%s\nexecutor log tail:\n%s",
			err, out, tail(c.exec.Output(), 40))
	}
	t.Logf("%s", tail(string(out), 15))
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
