#!/usr/bin/env bash
# taskwire demo on one machine: the executor with its embedded NATS server, one
# worker serving the "default" (command) and "go" (Go SDK) queues, a
# triggerer for deferred tasks, and a few example tasks. Prints each task's
# final state, then the task list.
#
#   ./demo.sh            (ports: TASKWIRE_DEMO_API_PORT, TASKWIRE_DEMO_NATS_PORT)
#
# Needs Go, python3 and a JDK with Maven (what is missing is installed with
# apt-get): the Python tasks run with the Python SDK installed as a package in
# .venv/, the Java tasks with the Java SDK's jar (mvn -f sdk/java package),
# both made here when missing or out of date (scripts/setup/*.sh, as
# ./test.sh does). When the Airflow venv exists (.venv-airflow, or
# TASKWIRE_AIRFLOW_VENV; TASKWIRE_DEMO_AIRFLOW=1 builds it with
# scripts/airflow-env.sh, which takes minutes the first time), the demo ends
# with a DAG run mixing Airflow tasks (examples/airflow) and a command.
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$PATH:/usr/local/go/bin"
. scripts/lib.sh

api_port=${TASKWIRE_DEMO_API_PORT:-18080}
nats_port=${TASKWIRE_DEMO_NATS_PORT:-14222}
work=$(mktemp -d "${TMPDIR:-/tmp}/taskwire-demo.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

echo "== the Python SDK in .venv/ (pip install ./sdk/python)"
. scripts/setup/20-python.sh
echo "== the Java SDK's jar (mvn -f sdk/java package)"
. scripts/setup/30-java.sh
jar=$TASKWIRE_TEST_JAVA_SDK_JAR
airflow_venv=${TASKWIRE_AIRFLOW_VENV:-$PWD/.venv-airflow}
if [ -x "$airflow_venv/bin/python" ] || [ "${TASKWIRE_DEMO_AIRFLOW:-}" = 1 ]; then
  echo "== the Airflow venv (scripts/airflow-env.sh; cached)"
  airflow_venv=$(scripts/airflow-env.sh | tail -n 1) || airflow_venv=
else
  airflow_venv=
fi
echo "== building taskwire"
go build -o "$work/bin/" ./cmd/executor ./cmd/worker ./cmd/triggerer ./examples/gotasks ./examples/polyglot
echo "== compiling examples/javatasks against the jar"
javac -cp "$jar" -d "$work/java" examples/javatasks/Tasks.java
export PATH="$work/bin:$PATH"
export TASKWIRE_API_URL="http://127.0.0.1:$api_port"

echo "== starting the executor (embedded NATS on 127.0.0.1:$nats_port, API on 127.0.0.1:$api_port)"
executor serve --data-dir "$work/data" --listen "127.0.0.1:$api_port" --nats-listen "127.0.0.1:$nats_port" \
  >"$work/executor.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  if executor list --limit 1 >/dev/null 2>&1; then break; fi
  sleep 0.1
done
executor list --limit 1 >/dev/null || { cat "$work/executor.log"; exit 1; }

echo "== starting a worker (queues default, go, python, java; runtimes in $work/worker.yaml)"
cat >"$work/worker.yaml" <<YAML
queues:
  default:
    runtime: command
  go:
    command: ["$work/bin/gotasks", --comm, "{comm_addr}", --logs, "{logs_addr}"]
  python:
    command: ["$PWD/.venv/bin/python", "$PWD/examples/pytasks/tasks.py", --comm, "{comm_addr}", --logs, "{logs_addr}"]
  java:
    command: [java, -XX:TieredStopAtLevel=1, -cp, "$work/java:$jar", Tasks, --comm, "{comm_addr}", --logs, "{logs_addr}"]
    codec: json
YAML
if [ -n "$airflow_venv" ]; then
  mkdir -p "$work/airflow-home"
  cat >>"$work/worker.yaml" <<YAML
  airflow:
    runtime: airflow
    python: "$airflow_venv/bin/python"
    dags_folder: "$PWD/examples/airflow/dags"
    env:
      AIRFLOW_HOME: "$work/airflow-home"
      AIRFLOW__CORE__LOAD_EXAMPLES: "False"
      PYTHONPATH: "$PWD/sdk/python/src"
    prefork: {}   # Airflow's runner imported once, in a zygote; each task forked from it
YAML
fi
worker --nats-url "nats://127.0.0.1:$nats_port" --api-url "$TASKWIRE_API_URL" --concurrency 4 \
  --config "$work/worker.yaml" --state-dir "$work/worker" >"$work/worker.log" 2>&1 &
pids+=($!)

echo "== starting a triggerer"
triggerer --nats-url "nats://127.0.0.1:$nats_port" >"$work/triggerer.log" 2>&1 &
pids+=($!)

executor variables set greeting "hello from a taskwire variable" >/dev/null
executor connections set db --type postgres --host db.example.com --port 5432 --login app --password s3cret >/dev/null

# run TITLE ARGS... submits a task, waits for it and prints its states; the
# task instance id (submit's first line) is left in $last.
last=
run() {
  local title=$1; shift
  printf '\n== %s\n' "$title"
  local rc=0
  executor submit --wait "$@" >"$work/submit.out" || rc=$?
  cat "$work/submit.out"
  last=$(head -n 1 "$work/submit.out")
  if [ "$rc" -ne 0 ]; then echo "(exit code $rc: expected for this task)"; fi
}
run "a command task" --queue default --task-id hello -- echo "hello, world"
run "a flaky command that succeeds on its second try" --queue default --task-id flaky --retries 2 --retry-delay 200ms \
  -- sh -c 'echo "try $TASKWIRE_TRY_NUMBER"; test "$TASKWIRE_TRY_NUMBER" -ge 2'
run "a Go SDK task pushing an XCom" --queue go --task push --dag-id demo --run-id run1
run "a Go SDK task pulling it" --queue go --task pull --dag-id demo --run-id run1
pull=$last
run "a Go SDK task reading a variable and a connection" --queue go --task read_config --dag-id demo --run-id run1
run "a Go SDK task deferring on a 1s timer; the triggerer resumes it" --queue go --task wait --dag-id demo --run-id run1 \
  --param seconds=1
run "a command task deferring until an external event" --queue default --task-id wait_for_event \
  -- sh -c 'if [ -z "$TASKWIRE_NEXT_METHOD" ]; then
    printf "{\"trigger\":\"event\",\"kwargs\":{\"name\":\"demo.go\"},\"next_method\":\"after\"}" > "$TASKWIRE_DEFER_FILE"
  else echo "resumed into $TASKWIRE_NEXT_METHOD with event $TASKWIRE_EVENT"; fi' &
waiter=$!
until executor list --state deferred 2>/dev/null | grep -q wait_for_event; do sleep 0.1; done
echo "(it is deferred; sending the external event demo.go)"
executor event send demo.go '{"batch": 42}' >/dev/null
wait "$waiter"
echo "-- its log:"
executor logs "$(head -n 1 "$work/submit.out")" | grep -E 'resumed|deferred' || true
run "a command past its execution timeout" --queue default --task-id slow --timeout 1s -- sleep 30

printf '\n== a polyglot pipeline: extract (Go, defers on a timer) → transform (Python) → load (Java), by XCom\n'
polyglot --run-id demo_run

printf '\n== all task instances\n'
executor list
printf '\n== logs of the pull task (the XCom value it pulled)\n'
executor logs "$pull"

printf '\n== the same pipeline as a DAG (examples/polyglot/dag.yaml): the executor runs each step when its upstream succeeded; publish is mapped over 3 targets\n'
executor dags apply -f examples/polyglot/dag.yaml
executor runs trigger polyglot --run-id demo_dag --conf '{"source": "demo"}' --wait 2>/dev/null
executor runs get polyglot demo_dag
printf -- '-- publish'"'"'s XCom, the list of its 3 instances'"'"' return values:\n'
executor xcom get polyglot demo_dag publish

if [ -n "$airflow_venv" ]; then
  printf '\n== an Airflow DAG on taskwire (examples/airflow): extract, total and gate run with Airflow'"'"'s own task runner (queue airflow), double is a shell command; the closed ShortCircuitOperator skips report\n'
  executor dags apply -f examples/airflow/dag.yaml
  executor runs trigger airflow_demo --run-id demo_airflow --wait 2>/dev/null || true
  executor runs get airflow_demo demo_airflow
  printf -- '-- total'"'"'s XCom (the sum of double'"'"'s list):\n'
  executor xcom get airflow_demo demo_airflow total
else
  printf '\n(no Airflow venv: TASKWIRE_DEMO_AIRFLOW=1 ./demo.sh builds one and runs examples/airflow too)\n'
fi
