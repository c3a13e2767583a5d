package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"gopkg.in/yaml.v3"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/client"
	"github.com/taskwire/taskwire/internal/natstest"
	"github.com/taskwire/taskwire/internal/netns"
	"github.com/taskwire/taskwire/internal/testbin"
)

// The Airflow test runs the real, pinned Apache Airflow (scripts/airflow-env.sh)
// with taskwire as its executor: Airflow's scheduler, API server and DAG
// processor, PostgreSQL (scripts/airflow-pg.sh), and taskwire's executor and
// workers, all as processes on 127.0.0.1. It does not skip: without the
// Airflow venv it builds one (TASKWIRE_AIRFLOW_VENV names a prepared one).

// airflowVenv returns the Airflow virtualenv, made (or checked: the script
// is idempotent and fast when it is ready) by scripts/airflow-env.sh.
func airflowVenv(t testing.TB) string {
	t.Helper()
	if v := os.Getenv("TASKWIRE_AIRFLOW_VENV"); v != "" {
		if _, err := os.Stat(filepath.Join(v, "bin", "airflow")); err != nil {
			t.Fatalf("TASKWIRE_AIRFLOW_VENV=%s has no bin/airflow: %v", v, err)
		}
		return v
	}
	root := repoRoot(t)
	cmd := exec.Command(filepath.Join(root, "scripts", "airflow-env.sh"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/airflow-env.sh: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

// airflow is a running Airflow deployment whose executor is taskwire.
type airflow struct {
	t         testing.TB
	venv      string
	dir       string
	signals   string
	env       []string
	url       string
	api       *testbin.Proc
	scheduler *testbin.Proc
	http      *http.Client
}

// startAirflow starts PostgreSQL, migrates Airflow's database, and starts
// Airflow's API server, DAG processor and scheduler with TaskwireExecutor
// pointed at the taskwire executor at twURL. extraEnv overrides settings
// (a later entry of a variable wins).
func startAirflow(t testing.TB, venv, twURL string, extraEnv ...string) *airflow {
	t.Helper()
	return startAirflowOn(t, "127.0.0.1", venv, twURL, extraEnv...)
}

// startAirflowOn is startAirflow with Airflow's API server listening on
// host (a test with network namespaces gives their veth's address).
func startAirflowOn(t testing.TB, host, venv, twURL string, extraEnv ...string) *airflow {
	t.Helper()
	a := launchAirflowOn(t, host, venv, twURL, extraEnv...)
	a.waitAPI()
	return a
}

// launchAirflowOn is startAirflowOn without the wait for Airflow's API
// server: its start is mostly Python imports, and the caller starts its
// own processes (workers, their prefork zygotes) meanwhile, then calls
// waitAPI. The API server, DAG processor and scheduler start at once: each
// needs only the migrated database.
func launchAirflowOn(t testing.TB, host, venv, twURL string, extraEnv ...string) *airflow {
	t.Helper()
	root := repoRoot(t)
	dir := t.TempDir()
	a := &airflow{t: t, venv: venv, dir: dir, signals: filepath.Join(dir, "signals"), http: &http.Client{Timeout: airflowCallTimeout}}
	if err := os.MkdirAll(a.signals, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.http.CloseIdleConnections)

	pgDir := filepath.Join(dir, "pg")
	pgScript := filepath.Join(root, "scripts", "airflow-pg.sh")
	var stderr bytes.Buffer
	cmd := exec.Command(pgScript, "start", pgDir)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("start PostgreSQL: %v\n%s", err, stderr.String())
	}
	dbURL := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command(pgScript, "stop", pgDir).CombinedOutput(); err != nil {
			t.Errorf("stop PostgreSQL: %v\n%s", err, out)
		}
	})

	apiAddr := freeAddrOn(t, host)
	_, port, _ := net.SplitHostPort(apiAddr)
	a.url = "http://" + apiAddr
	a.env = []string{
		"PATH=" + filepath.Join(venv, "bin") + ":" + os.Getenv("PATH"),
		"AIRFLOW_HOME=" + filepath.Join(dir, "home"),
		"AIRFLOW__CORE__DAGS_FOLDER=" + filepath.Join(root, "integration", "testdata", "airflow", "dags"),
		"AIRFLOW__CORE__LOAD_EXAMPLES=False",
		"AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False",
		"AIRFLOW__CORE__EXECUTOR=taskwire_airflow.executor.TaskwireExecutor",
		"AIRFLOW__CORE__EXECUTION_API_SERVER_URL=" + a.url + "/execution/",
		"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=True",
		"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=" + dbURL,
		"AIRFLOW__API__HOST=" + host,
		"AIRFLOW__API__PORT=" + port,
		"AIRFLOW__API__WORKERS=1",
		"AIRFLOW__API__SECRET_KEY=taskwire-integration-test",
		"AIRFLOW__API_AUTH__JWT_SECRET=taskwire-integration-test-jwt-secret-0123456789",
		"AIRFLOW__LOGGING__BASE_LOG_FOLDER=" + filepath.Join(dir, "logs"),
		// The DAG folder does not change during a test: the DAG processor
		// parses its files once, at its start, not again every 30 s
		// (Airflow's default; each parse forks a child that loads the
		// file), nor lists the folder again every few seconds.
		"AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL=3600",
		"AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=3600",
		// A loaded machine's API server can take tens of seconds to
		// answer a try's first call (the Task SDK's default is 5 s).
		"AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT=60",
		// A scheduler that died is noticed within seconds, and its tries
		// adopted by the next one soon after it starts.
		// (Not below Airflow's 30 s default on a loaded machine: a scheduler
		// whose own heartbeat is late then takes itself for dead.)
		"AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD=30",
		"AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL=3",
		"AIRFLOW__TASKWIRE__API_URL=" + twURL,
		"AIRFLOW__TASKWIRE__WATCH_RETRY_SECONDS=0.5",
		"TW_TEST_SIGNALS=" + a.signals,
		// This checkout's integration package, whichever checkout's venv.
		"PYTHONPATH=" + filepath.Join(root, "integrations", "airflow", "src"),
	}
	a.env = append(a.env, extraEnv...)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	migrate := exec.CommandContext(ctx, filepath.Join(venv, "bin", "airflow"), "db", "migrate")
	migrate.Env = append(os.Environ(), a.env...)
	out, err = migrate.CombinedOutput()
	testbin.Account(t, "airflow db migrate", migrate.ProcessState)
	if err != nil {
		t.Fatalf("airflow db migrate: %v\n%s", err, out)
	}

	a.api = a.start("airflow-api-server", "api-server")
	a.start("airflow-dag-processor", "dag-processor")
	a.scheduler = a.start("airflow-scheduler", "scheduler")
	return a
}

// waitAPI waits until Airflow's API server answers its health check.
func (a *airflow) waitAPI() {
	a.t.Helper()
	api := a.api
	// Its start is mostly Python imports: a minute on a quiet machine, and
	// over three at a load of 50 with other tests beside it.
	testbin.EventuallyEvery(a.t, 6*time.Minute, airflowPoll, "Airflow's API server", func() bool {
		select {
		case <-api.Done():
			a.t.Fatalf("Airflow's API server exited: %v\n%s", api.Err(), api.Output())
		default:
		}
		resp, err := a.http.Get(a.url + "/api/v2/monitor/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// with returns a to be used by the (sub)test t: its helpers fail t.
func (a *airflow) with(t testing.TB) *airflow {
	b := *a
	b.t = t
	return &b
}

// start runs `airflow <args>` as a process stopped at cleanup.
func (a *airflow) start(name string, args ...string) *testbin.Proc {
	a.t.Helper()
	return testbin.Start(a.t, name, filepath.Join(a.venv, "bin", "airflow"), a.env, args...)
}

// preforkConfig writes a worker.yaml serving queue as
// integrations/airflow/worker.yaml (docker-compose.airflow.yml's worker)
// serves its "airflow" queue: the command runtime whose workloads (python -m
// taskwire_airflow.run) are forked from the worker's prefork zygote, which
// imported Airflow's runner. Only the python, the module path (this
// checkout's packages) and a short restart delay are the test's.
// edit may change the prefork section (a benchmark's variants).
func (a *airflow) preforkConfig(name, queue string, edit ...func(prefork map[string]any)) string {
	a.t.Helper()
	root := repoRoot(a.t)
	raw, err := os.ReadFile(filepath.Join(root, "integrations", "airflow", "worker.yaml"))
	if err != nil {
		a.t.Fatal(err)
	}
	var doc struct {
		Queues map[string]map[string]any `yaml:"queues"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		a.t.Fatal(err)
	}
	q := doc.Queues["airflow"]
	pf, _ := q["prefork"].(map[string]any)
	if pf == nil {
		a.t.Fatalf("integrations/airflow/worker.yaml: the airflow queue has no prefork: %v", q)
	}
	pf["python"] = filepath.Join(a.venv, "bin", "python")
	pf["env"] = map[string]string{"PYTHONPATH": filepath.Join(root, "integrations", "airflow", "src") +
		string(os.PathListSeparator) + filepath.Join(root, "sdk", "python", "src")}
	pf["restart_delay"] = "200ms"
	for _, e := range edit {
		e(pf)
	}
	out, err := yaml.Marshal(map[string]any{"queues": map[string]any{queue: q}})
	if err != nil {
		a.t.Fatal(err)
	}
	cfg := filepath.Join(a.dir, name+".yaml")
	if err := os.WriteFile(cfg, out, 0o644); err != nil {
		a.t.Fatal(err)
	}
	return cfg
}

// zygotePid is the pid of the start-th start of a worker's prefork zygote
// (its "prefork zygote ready" log line); 0 when it was not ready that often.
func zygotePid(w *testbin.Proc, start int) int {
	m := regexp.MustCompile(`msg="prefork zygote ready" .*\bpid=(\d+)`).FindAllStringSubmatch(w.Output(), -1)
	if len(m) < start {
		return 0
	}
	pid, _ := strconv.Atoi(m[start-1][1])
	return pid
}

// workerEnv is what taskwire's workers need to run Airflow's workloads: the
// venv's python3 first on PATH (the workload command), Airflow's settings,
// and a log folder of the workers' own (as on machines of their own: what
// Airflow's API server shows of a try comes from taskwire, not from files).
func (a *airflow) workerEnv() []string {
	return append(slices.Clone(a.env), "AIRFLOW__LOGGING__BASE_LOG_FOLDER="+filepath.Join(a.dir, "worker-logs"))
}

// call does one request to Airflow's REST API (the all-admins auth manager
// needs no token) and decodes the answer into out.
func (a *airflow) call(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.url+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

// waitDags waits until the DAG processor has parsed the DAGs.
func (a *airflow) waitDags(ids ...string) {
	a.t.Helper()
	testbin.EventuallyEvery(a.t, 3*time.Minute, airflowPoll, "Airflow's DAGs parsed", func() bool {
		for _, id := range ids {
			if err := a.call("GET", "/api/v2/dags/"+id, nil, nil); err != nil {
				return false
			}
		}
		return true
	})
}

// airflowPoll is how often a test asks Airflow (its REST API, a log it
// searches through) or taskwire's list whether what it waits for happened:
// each answer of Airflow's API server costs it a FastAPI request and its
// PostgreSQL queries, so Eventually's 20 ms kept that server busy for the
// whole of every wait (what the waits are for takes seconds). Once a
// second, not every 250 ms, since TestAirflowExecutor's five DAG runs wait
// at once.
const airflowPoll = time.Second

// airflowCallTimeout bounds one call to Airflow's REST API. Airflow's API
// server, beside the package's other tests, has been seen to answer
// nothing for 44 s (every request it held finished at once after that,
// the DAG run it was asked for created at the start): what the tests wait
// for is the answer, not its speed.
const airflowCallTimeout = 3 * time.Minute

// trigger starts a DAG run and returns its run id. The run id is the
// test's own, so a trigger whose answer did not come (the request may
// have been carried out) is sent again safely: Airflow answers 409 for a
// run id it has.
func (a *airflow) trigger(dagID string) string {
	a.t.Helper()
	runID := fmt.Sprintf("test__%s_%d", dagID, time.Now().UnixNano())
	body := map[string]any{"dag_run_id": runID, "logical_date": nil}
	var err error
	for range 3 {
		if err = a.call("POST", "/api/v2/dags/"+dagID+"/dagRuns", body, nil); err == nil || strings.Contains(err.Error(), "409 Conflict") {
			return runID
		}
		a.t.Logf("trigger %s: %v (sent again)", dagID, err)
	}
	a.t.Fatal(err)
	return ""
}

// airflowTI is a task instance as Airflow's REST API answers it.
type airflowTI struct {
	TaskID    string `json:"task_id"`
	State     string `json:"state"`
	TryNumber int    `json:"try_number"`
	Queue     string `json:"queue"`
	ID        string `json:"id"`
}

func (a *airflow) tis(dagID, runID string) map[string]airflowTI {
	a.t.Helper()
	var got struct {
		TIs []airflowTI `json:"task_instances"`
	}
	if err := a.call("GET", "/api/v2/dags/"+dagID+"/dagRuns/"+runID+"/taskInstances", nil, &got); err != nil {
		a.t.Fatal(err)
	}
	m := map[string]airflowTI{}
	for _, ti := range got.TIs {
		m[ti.TaskID] = ti
	}
	return m
}

// waitRun waits until the DAG run ends and requires it to have succeeded.
func (a *airflow) waitRun(dagID, runID string, timeout time.Duration) {
	a.t.Helper()
	var state string
	testbin.EventuallyEvery(a.t, timeout, airflowPoll, "DAG run "+dagID+" "+runID+" to end", func() bool {
		var run struct {
			State string `json:"state"`
		}
		if err := a.call("GET", "/api/v2/dags/"+dagID+"/dagRuns/"+runID, nil, &run); err != nil {
			a.t.Logf("dag run: %v", err)
			return false
		}
		state = run.State
		return state == "success" || state == "failed"
	})
	if state != "success" {
		tis := a.tis(dagID, runID)
		for _, ti := range tis {
			if ti.State == "failed" && ti.TryNumber > 0 {
				a.t.Logf("Airflow's log of %s try %d:\n%s", ti.TaskID, ti.TryNumber, a.taskLog(dagID, runID, ti.TaskID, ti.TryNumber))
			}
		}
		a.t.Fatalf("DAG run %s %s ended %s; task instances: %+v", dagID, runID, state, tis)
	}
}

// waitFile waits for a file the tasks write and returns its contents.
func (a *airflow) waitFile(name string, timeout time.Duration) string {
	a.t.Helper()
	var b []byte
	testbin.Eventually(a.t, timeout, "task signal "+name, func() bool {
		var err error
		b, err = os.ReadFile(filepath.Join(a.signals, name))
		// Every signal has content: an empty file is one being written
		// (Python's write_text creates it, then writes).
		return err == nil && len(b) > 0
	})
	return string(b)
}

// taskLog is a try's log as Airflow's REST API answers it (what its UI
// shows): each line's JSON.
func (a *airflow) taskLog(dagID, runID, taskID string, try int) string {
	a.t.Helper()
	var got struct {
		Content []json.RawMessage `json:"content"`
	}
	path := fmt.Sprintf("/api/v2/dags/%s/dagRuns/%s/taskInstances/%s/logs/%d?full_content=true", dagID, runID, taskID, try)
	if err := a.call("GET", path, nil, &got); err != nil {
		a.t.Fatal(err)
	}
	var b strings.Builder
	for _, l := range got.Content {
		b.Write(l)
		b.WriteByte('\n')
	}
	return b.String()
}

// airflowTries are taskwire's task instances of an Airflow DAG, by Airflow
// task id, each list in Airflow try order.
func airflowTries(t testing.TB, api *client.Client, dagID string) map[string][]*activity.TaskInstance {
	t.Helper()
	tis, _, err := api.List(context.Background(), client.ListOpts{DagID: dagID, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]*activity.TaskInstance{}
	for _, ti := range tis {
		m[ti.TaskID] = append(m[ti.TaskID], ti)
	}
	for _, l := range m {
		slices.SortFunc(l, func(x, y *activity.TaskInstance) int { return airflowTry(x) - airflowTry(y) })
	}
	return m
}

// airflowTry is Airflow's try number that a taskwire task instance ran.
func airflowTry(ti *activity.TaskInstance) int {
	ident, _ := ti.Params["airflow"].(map[string]any)
	n, _ := ident["try_number"].(float64)
	return int(n)
}

// waitTries waits until taskwire's tries of dagID are want (Airflow may see
// a try end a moment before taskwire does: the task reports to Airflow's API
// server before its process exits).
func waitTries(t testing.TB, api *client.Client, dagID string, want map[string][]string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		tw := airflowTries(t, api, dagID)
		var bad []string
		for id, w := range want {
			if got := states(tw[id]); !slices.Equal(got, w) {
				bad = append(bad, fmt.Sprintf("taskwire's %s: %v, want %v", id, got, w))
			}
		}
		if len(bad) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Error(strings.Join(bad, "\n"))
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func states(l []*activity.TaskInstance) []string {
	var s []string
	for _, ti := range l {
		s = append(s, fmt.Sprintf("try %d %s on %s", airflowTry(ti), ti.State, ti.Queue))
	}
	return s
}

// forkLine is the index in a worker's log of the "task process forked" line
// of taskwire task instance id (its zygote forked the try's process), -1
// when there is none.
func forkLine(out, id string) int {
	re := regexp.MustCompile(`msg="task process forked".*? ti_id=` + regexp.QuoteMeta(id) + `(\s|$)`)
	if loc := re.FindStringIndex(out); loc != nil {
		return loc[0]
	}
	return -1
}

// TestAirflowExecutor starts first, beside the storms (see machine_test.go):
// it waits on Airflow's services far more than it computes, it is the
// package's longest test, and its one time-bound (the zombie threshold that
// fails the SIGKILLed worker's try) has room for a loaded machine.
func TestAirflowExecutor(t *testing.T) {
	parallel(t, first)
	venv := airflowVenv(t)
	// NATS, taskwire's executor and Airflow's API server listen on the
	// veth of a router namespace, so that a worker in a namespace behind
	// it (NAT, outbound only) reaches them, as the other workers do.
	inner, router := netns.NewBehindNAT(t)
	srv := natstest.RunProcessWith(t, func(so *server.Options) { so.Host = router.HostAddr })
	const token = "airflow-test" // off loopback: secure by default
	c := newCluster(t, clusterOpts{plain: true, zombieThreshold: "10s", logLevel: "info", nats: srv,
		listen: freeAddrOn(t, router.HostAddr), operatorToken: token})
	af := launchAirflowOn(t, router.HostAddr, venv, c.apiURL, "AIRFLOW__TASKWIRE__TOKEN="+token,
		"AIRFLOW__LOGGING__LOGGING_CONFIG_CLASS=taskwire_airflow.log_config.LOGGING_CONFIG")
	// While Airflow's services start, the workers start theirs. The
	// "default" and "kill" queues' workers fork each workload from their
	// prefork zygote (configured as docker-compose.airflow.yml's worker);
	// the "other" and "nat" queues' workers run each in a fresh process.
	wenv := af.workerEnv()
	wd := c.startWorker(workerOpts{name: "worker-default", queues: "default", concurrency: 6, env: wenv,
		config: af.preforkConfig("worker-default", "default")})
	killState := t.TempDir()
	kcfg := af.preforkConfig("worker-kill", "kill")
	kw := c.startWorker(workerOpts{name: "worker-kill", queues: "kill", concurrency: 1, env: wenv, config: kcfg,
		extra: []string{"--state-dir", killState}})
	c.startWorker(workerOpts{name: "worker-other", queues: "other", concurrency: 4, env: wenv})
	c.startWorker(workerOpts{name: "worker-nat", queues: "nat", concurrency: 2, env: wenv, ns: inner,
		extra: []string{"--worker-id", "nat"}})
	waitZygote(t, wd)

	// The "default" queue's zygote is crashed before its first workload
	// (while Airflow's services start): every workload of that queue runs
	// in the restarted zygote's children, as the subtests check of theirs.
	t.Run("the prefork zygote, crashed, is restarted by its worker", func(t *testing.T) {
		first := zygotePid(wd, 1)
		if first == 0 {
			t.Fatalf("no zygote start in the worker's log:\n%s", wd.Output())
		}
		if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		testbin.EventuallyEvery(t, 3*time.Minute, airflowPoll, "the worker to restart its zygote", func() bool {
			return zygotePid(wd, 2) != 0
		})
		if second := zygotePid(wd, 2); second == first || !testbin.Alive(second) {
			t.Fatalf("the restarted zygote: pid %d (the crashed one %d), alive %v", second, first, testbin.Alive(second))
		}
	})
	// inRestartedZygote checks that the tries ids of the "default" queue
	// were forked by the restarted zygote (after its ready line; it was
	// not restarted again).
	inRestartedZygote := func(t *testing.T, what string, ids ...string) {
		t.Helper()
		out := wd.Output()
		ready := regexp.MustCompile(`msg="prefork zygote ready"`).FindAllStringIndex(out, -1)
		if len(ready) != 2 {
			t.Errorf("the default queue's zygote started %d times, want 2 (the first crashed)", len(ready))
			return
		}
		for _, id := range ids {
			if i := forkLine(out, id); i < ready[1][0] {
				t.Errorf("%s (task %s) was not forked by the restarted zygote (fork line at %d, zygote ready at %d)", what, id, i, ready[1][0])
			}
		}
	}

	af.waitAPI()
	af.waitDags("tw_three", "tw_kill", "tw_adopt", "tw_nat", "tw_deadline")

	// The DAG runs check nothing of each other's (each counts the forks of
	// its own tries; the SIGKILLed worker serves a queue of its own, "kill",
	// with a zygote of its own): they run at once. The scheduler's restart,
	// which every run would see, waits for the others to end.
	var others sync.WaitGroup
	others.Add(4)
	t.Run("runs at once", func(t *testing.T) {
		t.Run("three tasks on two queues, one retried", func(t *testing.T) {
			t.Parallel()
			defer others.Done()
			af := af.with(t)
			run := af.trigger("tw_three")
			af.waitRun("tw_three", run, 4*time.Minute)
			tis := af.tis("tw_three", run)
			want := map[string]struct {
				queue string
				try   int
			}{"extract": {"default", 1}, "double": {"other", 1}, "flaky": {"default", 2}}
			for id, w := range want {
				ti := tis[id]
				if ti.State != "success" || ti.TryNumber != w.try || ti.Queue != w.queue {
					t.Errorf("Airflow's %s: %+v, want success on try %d on queue %s", id, ti, w.try, w.queue)
				}
			}
			// taskwire ran each Airflow try once, on the task's queue, and
			// recorded how it ended: Airflow's failed first try of flaky failed.
			waitTries(t, c.api, "tw_three", map[string][]string{
				"extract": {"try 1 success on default"},
				"double":  {"try 1 success on other"},
				"flaky":   {"try 1 failed on default", "try 2 success on default"},
			})
			// The "default" queue's three tries ran in the zygote's children.
			tries := airflowTries(t, c.api, "tw_three")
			var ids []string
			for _, ti := range append(slices.Clone(tries["extract"]), tries["flaky"]...) {
				ids = append(ids, ti.ID)
			}
			if len(ids) != 3 {
				t.Errorf("taskwire's tries of the default queue: %d, want 3", len(ids))
			}
			inRestartedZygote(t, "a try of tw_three", ids...)

			// Airflow's REST API (so its UI) shows each try's own log, read
			// from taskwire's logs API (the workers' log folder is not
			// Airflow's): the failed first try's error, the second's success.
			tw := tries["flaky"]
			if len(tw) != 2 {
				t.Fatalf("taskwire's flaky: %s", states(tw))
			}
			log1, log2 := af.taskLog("tw_three", run, "flaky", 1), af.taskLog("tw_three", run, "flaky", 2)
			for _, want := range []string{"taskwire task " + tw[0].ID, "try 1 fails on purpose"} {
				if !strings.Contains(log1, want) {
					t.Errorf("Airflow's log of flaky try 1 lacks %q:\n%s", want, log1)
				}
			}
			if !strings.Contains(log2, "taskwire task "+tw[1].ID) || strings.Contains(log2, "fails on purpose") {
				t.Errorf("Airflow's log of flaky try 2 is not its own:\n%s", log2)
			}
		})

		t.Run("a worker behind NAT", func(t *testing.T) {
			t.Parallel()
			defer others.Done()
			af := af.with(t)
			run := af.trigger("tw_nat")
			af.waitRun("tw_nat", run, 4*time.Minute)
			ti := af.tis("tw_nat", run)["behind_nat"]
			if ti.State != "success" || ti.Queue != "nat" {
				t.Errorf("Airflow's behind_nat: %+v, want success on queue nat", ti)
			}
			// The task ran inside the namespace (its connections to Airflow's
			// API server leave from the private address), and read its
			// upstream's XCom from Airflow's API server through the NAT.
			if got, want := af.waitFile("nat-task", time.Minute), inner.Addr+" pulled through the NAT"; got != want {
				t.Errorf("the task behind NAT wrote %q, want %q", got, want)
			}
			// (The tasks have retries: a loaded machine's Airflow API server
			// can answer a try's first call after the Task SDK's timeout.)
			testbin.EventuallyEvery(t, time.Minute, airflowPoll, "taskwire's successful try of behind_nat", func() bool {
				tw := airflowTries(t, c.api, "tw_nat")["behind_nat"]
				return len(tw) == ti.TryNumber && tw[len(tw)-1].State == activity.StateSuccess
			})
			for _, try := range airflowTries(t, c.api, "tw_nat")["behind_nat"] {
				if try.Queue != "nat" || try.WorkerID != "nat" {
					t.Errorf("taskwire's behind_nat: %s by %q, want every try run by the worker behind NAT", states([]*activity.TaskInstance{try}), try.WorkerID)
				}
			}
			// Nothing outside the NAT can connect in.
			if err := netns.Dial(net.JoinHostPort(inner.Addr, "22")); err == nil {
				t.Errorf("connected to %s from outside the NAT", inner.Addr)
			}
		})

		t.Run("worker SIGKILLed mid-task", func(t *testing.T) {
			t.Parallel()
			defer others.Done()
			af := af.with(t)
			// Its worker forks the workload from its prefork zygote: the
			// zygote's children die with the worker.
			waitZygote(t, kw)
			run := af.trigger("tw_kill")
			pid, err := strconv.Atoi(af.waitFile("kill-started", 3*time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
			if !strings.Contains(kw.Output(), "task process forked") {
				t.Errorf("the workload did not run in a child of the zygote:\n%s", kw.Output())
			}
			kw.Kill()
			// A new worker on the same state directory kills what the dead one
			// left running, and serves the retry.
			c.startWorker(workerOpts{name: "worker-kill-2", queues: "kill", concurrency: 1, env: wenv, config: kcfg,
				extra: []string{"--state-dir", killState}})
			af.waitRun("tw_kill", run, 4*time.Minute)
			if ti := af.tis("tw_kill", run)["hang_first"]; ti.State != "success" || ti.TryNumber != 2 {
				t.Errorf("Airflow's hang_first: %+v, want success on try 2", ti)
			}
			waitTries(t, c.api, "tw_kill", map[string][]string{
				"hang_first": {"try 1 failed on kill", "try 2 success on kill"},
			})
			testbin.Eventually(t, time.Minute, "the killed worker's task process to be gone", func() bool {
				return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
			})
		})

		t.Run("a deadline callback runs on a worker", func(t *testing.T) {
			t.Parallel()
			defer others.Done()
			af := af.with(t)
			run := af.trigger("tw_deadline")
			// The run outlasts its 1 s deadline (its task waits for the
			// callback); the scheduler sends the deadline's ExecuteCallback
			// to TaskwireExecutor, and a worker runs it.
			if got := af.waitFile("deadline-missed", 3*time.Minute); got != "missed" {
				t.Errorf("the deadline callback wrote %q, want %q", got, "missed")
			}
			af.waitRun("tw_deadline", run, 3*time.Minute)
			var cb []*activity.TaskInstance
			testbin.EventuallyEvery(t, time.Minute, airflowPoll, "taskwire's callback task to succeed", func() bool {
				cb = airflowTries(t, c.api, "tw_deadline")["callback"]
				return len(cb) == 1 && cb[0].State == activity.StateSuccess
			})
			if kind, _ := cb[0].Params["airflow"].(map[string]any)["kind"].(string); kind != "ExecuteCallback" || cb[0].Queue != "default" {
				t.Errorf("taskwire's callback task: %s on %s, params %v", cb[0].State, cb[0].Queue, cb[0].Params)
			}
			// The callback and the run's task ran in the restarted zygote's
			// children.
			outlast := airflowTries(t, c.api, "tw_deadline")["outlast"]
			if len(outlast) != 1 {
				t.Fatalf("taskwire's outlast: %s, want one try", states(outlast))
			}
			inRestartedZygote(t, "the callback or outlast", cb[0].ID, outlast[0].ID)
			// Airflow recorded the callback's success from the executor's event.
			sched := af.scheduler
			testbin.EventuallyEvery(t, time.Minute, airflowPoll, "the scheduler to record the callback's success", func() bool {
				return strings.Contains(sched.Output(), "completed successfully")
			})
		})

		t.Run("scheduler restarted mid-run adopts the running tasks", func(t *testing.T) {
			t.Parallel()
			af := af.with(t)
			run := af.trigger("tw_adopt")
			af.waitFile("adopt-a-started", 3*time.Minute)
			af.waitFile("adopt-b-started", 3*time.Minute)
			testbin.EventuallyEvery(t, time.Minute, airflowPoll, "both tasks running in Airflow", func() bool {
				tis := af.tis("tw_adopt", run)
				return tis["held_a"].State == "running" && tis["held_b"].State == "running"
			})
			// The other runs have ended (a failed one too): the scheduler
			// is theirs as well.
			others.Wait()
			af.scheduler.Kill()
			af.scheduler = af.start("airflow-scheduler-2", "scheduler")
			sched := af.scheduler
			testbin.EventuallyEvery(t, 3*time.Minute, airflowPoll, "the new scheduler to adopt both tries", func() bool {
				return strings.Count(sched.Output(), "adopted <TaskInstance: tw_adopt.") >= 2
			})
			if err := os.WriteFile(filepath.Join(af.signals, "adopt-release"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			af.waitRun("tw_adopt", run, 3*time.Minute)
			for _, id := range []string{"held_a", "held_b"} {
				if ti := af.tis("tw_adopt", run)[id]; ti.State != "success" || ti.TryNumber != 1 {
					t.Errorf("Airflow's %s: %+v, want success on its first try (adopted, not reset)", id, ti)
				}
			}
			waitTries(t, c.api, "tw_adopt", map[string][]string{
				"held_a": {"try 1 success on default"},
				"held_b": {"try 1 success on other"},
			})
			// held_a ran in the restarted zygote's children too.
			if a := airflowTries(t, c.api, "tw_adopt")["held_a"]; len(a) == 1 {
				inRestartedZygote(t, "held_a", a[0].ID)
			}
		})
	})
}
