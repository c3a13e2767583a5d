package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/internal/testbin"
)

// cli runs the executor CLI binary against the cluster and returns its
// stdout, stderr and exit status.
func (c *cluster) cli(args ...string) (stdout, stderr string, code int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bins.executor, args...)
	cmd.Env = append(os.Environ(), "TASKWIRE_API_URL="+c.apiURL)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		c.t.Fatalf("executor %q: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

// cliJSON runs a CLI command with --json and decodes its stdout into v.
func (c *cluster) cliJSON(v any, args ...string) {
	c.t.Helper()
	out, errOut, code := c.cli(append(args, "--json")...)
	if code != 0 {
		c.t.Fatalf("executor %q: exit %d: %s", args, code, errOut)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("executor %q: %v\n%s", args, err, out)
	}
}

// workers reads the registry through the Go client (the CLI is checked
// apart: polling with it would be slow under -race).
func (c *cluster) workers() map[string]activity.WorkerInfo {
	c.t.Helper()
	ws, err := c.api.Workers(context.Background())
	if err != nil {
		c.t.Fatal(err)
	}
	m := map[string]activity.WorkerInfo{}
	for _, w := range ws {
		m[w.ID] = w
	}
	return m
}

func (c *cluster) queueInfo(name string) activity.QueueInfo {
	c.t.Helper()
	qs, err := c.api.Queues(context.Background())
	if err != nil {
		c.t.Fatal(err)
	}
	for _, q := range qs {
		if q.Name == name {
			return q
		}
	}
	return activity.QueueInfo{Name: name}
}

// TestWorkerRegistry lists workers and triggerers through the CLI, sees a
// SIGKILLed worker and triggerer become lost (not dropped), drains a worker
// running a task (it finishes the task, pulls nothing more, says so), shows
// the queues, and answers unknown worker ids with 404.
func TestWorkerRegistry(t *testing.T) {
	parallel(t, timed)
	c := newCluster(t, clusterOpts{plain: true, extra: []string{"--lost-after", "1s"}})
	wa := c.startWorker(workerOpts{name: "wa", queues: "default", concurrency: 1, extra: []string{"--worker-id", "wa"}})
	wb := c.startWorker(workerOpts{name: "wb", extra: []string{"--worker-id", "wb"}})
	tr := c.startTriggerer(triggererOpts{name: "t1"})

	testbin.Eventually(t, 10*time.Second, "both workers live", func() bool {
		ws := c.workers()
		return ws["wa"].State == activity.MemberLive && ws["wb"].State == activity.MemberLive
	})
	var listed struct{ Workers []activity.WorkerInfo }
	c.cliJSON(&listed, "workers")
	if len(listed.Workers) != 2 || listed.Workers[0].ID != "wa" {
		t.Fatalf("workers --json: %+v", listed.Workers)
	}
	a := listed.Workers[0]
	if a.Hostname == "" || a.Version == "" || a.Concurrency != 1 || a.FreeSlots != 1 || a.Running != 0 ||
		strings.Join(a.Queues, ",") != "default" || strings.Join(a.Runtimes, ",") != "default=command" ||
		a.StartedAt.IsZero() || time.Since(a.LastHeartbeat) > 5*time.Second {
		t.Errorf("worker wa = %+v", a)
	}
	if b := c.workers()["wb"]; !strings.HasPrefix(strings.Join(b.Runtimes, ","), "default=command,go=") {
		t.Errorf("worker wb runtimes %q", b.Runtimes)
	}
	out, _, code := c.cli("workers")
	if code != 0 || !strings.Contains(out, "STATE") || !strings.Contains(out, "wa") || !strings.Contains(out, "live") {
		t.Errorf("workers table (exit %d):\n%s", code, out)
	}

	// A worker that dies is shown as lost, and kept.
	wb.Kill()
	testbin.Eventually(t, 10*time.Second, "wb lost", func() bool { return c.workers()["wb"].State == activity.MemberLost })
	if out, _, _ := c.cli("workers"); !strings.Contains(out, "lost") {
		t.Errorf("workers table shows no lost worker:\n%s", out)
	}

	// Drain wa while it runs a task.
	release := c.path("release")
	ti := c.submit(activity.TaskSpec{Queue: "default", Entrypoint: sh("while [ ! -e " + release + " ]; do sleep 0.05; done")})
	c.waitState(ti.ID, activity.StateRunning, 10*time.Second)
	out, errOut, code := c.cli("workers", "drain", "wa")
	if code != 0 || !strings.Contains(out, "wa draining") {
		t.Fatalf("workers drain wa: exit %d\n%s%s", code, out, errOut)
	}
	testbin.Eventually(t, 10*time.Second, "wa says it drains", func() bool {
		w := c.workers()["wa"]
		return w.State == activity.MemberDraining && w.Running == 1 && strings.Contains(wa.Output(), "draining")
	})
	next := c.submit(activity.TaskSpec{Queue: "default", Entrypoint: sh("true")})
	testbin.Eventually(t, 10*time.Second, "queue default: 1 pending, 1 running, no live worker", func() bool {
		q := c.queueInfo("default")
		return q.Pending == 1 && q.Running == 1 && q.Workers == 0
	})
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := c.wait(ti.ID, 10*time.Second); got.State != activity.StateSuccess {
		t.Fatalf("drained worker's task: %+v", got)
	}
	testbin.Eventually(t, 10*time.Second, "wa drained", func() bool {
		return strings.Contains(wa.Output(), "drained") && c.workers()["wa"].Running == 0
	})
	if got, err := c.api.Get(context.Background(), next.ID); err != nil || got.State != activity.StateQueued {
		t.Errorf("task queued after the drain: %v %+v (a draining worker pulls nothing)", err, got)
	}
	var qs struct{ Queues []activity.QueueInfo }
	c.cliJSON(&qs, "queues")
	if len(qs.Queues) != 2 || qs.Queues[0] != (activity.QueueInfo{Name: "default", Pending: 1, FinishedLastMinute: 1}) {
		t.Errorf("queues --json: %+v", qs.Queues)
	}
	if out, _, _ := c.cli("queues"); !strings.Contains(out, "PENDING") || !strings.Contains(out, "default") {
		t.Errorf("queues table:\n%s", out)
	}

	// Unknown ids: 404 with a message, from the CLI and the API.
	_, errOut, code = c.cli("workers", "drain", "no-such-worker")
	if code != 2 || !strings.Contains(errOut, "404") || !strings.Contains(errOut, "no-such-worker") {
		t.Errorf("drain unknown worker: exit %d: %s", code, errOut)
	}
	resp, err := http.Post(c.apiURL+"/api/v1/workers/no-such-worker/drain", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var e struct{ Error, Detail string }
	if resp.StatusCode != http.StatusNotFound || json.Unmarshal(body, &e) != nil || e.Error == "" || !strings.Contains(e.Detail, "no-such-worker") {
		t.Errorf("POST drain of unknown worker: %d %s", resp.StatusCode, body)
	}

	// Triggerers: live, then lost once killed.
	triggerer := func() activity.TriggererInfo {
		ts, err := c.api.Triggerers(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range ts {
			if tr.ID == "t1" {
				return tr
			}
		}
		return activity.TriggererInfo{}
	}
	var trs struct{ Triggerers []activity.TriggererInfo }
	c.cliJSON(&trs, "triggerers")
	if len(trs.Triggerers) != 1 || trs.Triggerers[0].ID != "t1" || trs.Triggerers[0].State != activity.MemberLive ||
		trs.Triggerers[0].Hostname == "" || trs.Triggerers[0].StartedAt.IsZero() {
		t.Errorf("triggerers --json: %+v", trs.Triggerers)
	}
	tr.Kill()
	testbin.Eventually(t, 10*time.Second, "t1 lost", func() bool { return triggerer().State == activity.MemberLost })
	if out, _, _ := c.cli("triggerers"); !strings.Contains(out, "t1") || !strings.Contains(out, "lost") {
		t.Errorf("triggerers table:\n%s", out)
	}
}

// TestLiveCLI: submit --wait prints the state changes as they happen and
// exits with the outcome; submitting many from a file shows a progress bar
// and a summary; logs --follow streams a running task's lines as the worker
// publishes them, and ends when the task does.
func TestLiveCLI(t *testing.T) {
	parallel(t, shared)
	c := newCluster(t, clusterOpts{plain: true})
	c.startWorker(workerOpts{queues: "default"})

	out, errOut, code := c.cli("submit", "--wait", "--", "sh", "-c", "sleep 0.5; echo hello")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 4 || lines[1] != "queued" || !strings.HasPrefix(lines[2], "running (try 1 on ") || lines[3] != "success (try 1)" {
		t.Errorf("submit --wait: exit %d\n%s%s", code, out, errOut)
	}
	out, _, code = c.cli("submit", "--wait", "--", "sh", "-c", "exit 3")
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if code != 1 || !strings.Contains(lines[len(lines)-1], "failed (try 1: exit code 3") {
		t.Errorf("submit --wait of a failing task: exit %d\n%s", code, out)
	}

	specs := c.path("specs.json")
	var list []activity.TaskSpec
	for range 5 {
		list = append(list, activity.TaskSpec{Queue: "default", Entrypoint: sh("true")})
	}
	b, _ := json.Marshal(list)
	if err := os.WriteFile(specs, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = c.cli("submit", "-f", specs, "--wait")
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 11 || lines[10] != "5 finished: 5 success" ||
		!strings.Contains(errOut, "submitting") || !strings.Contains(errOut, "5/5") ||
		!strings.Contains(errOut, "submitted 5 task instances: 5 queue default") || !strings.Contains(errOut, "finished") {
		t.Errorf("submit -f --wait: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}

	release := c.path("release")
	ti := c.submit(activity.TaskSpec{Queue: "default",
		Entrypoint: sh("echo first; while [ ! -e " + release + " ]; do sleep 0.05; done; echo second")})
	c.waitState(ti.ID, activity.StateRunning, 10*time.Second)
	follow := testbin.Start(t, "logs", c.bins.executor, nil, "logs", ti.ID, "--follow", "--api-url", c.apiURL)
	testbin.Eventually(t, 10*time.Second, "the first line, followed", func() bool { return strings.Contains(follow.Output(), "first") })
	if strings.Contains(follow.Output(), "second") {
		t.Fatalf("second line before the task wrote it:\n%s", follow.Output())
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case <-follow.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("logs --follow did not end with the task")
	}
	if follow.Err() != nil || !strings.Contains(follow.Output(), "second") {
		t.Errorf("logs --follow: %v\n%s", follow.Err(), follow.Output())
	}
}

// httpGet answers a GET's status and body.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	code, body, err := tryGet(url)
	if err != nil {
		t.Fatal(err)
	}
	return code, body
}

// ready reports whether url answers 200 with "ready\n"; a process that does
// not listen yet (it may be slow to start on a busy machine) is not ready.
func ready(url string) bool {
	code, body, err := tryGet(url)
	return err == nil && code == http.StatusOK && body == "ready\n"
}

func tryGet(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// metric finds a sample line "name{labels} value" in a /metrics answer and
// returns its value ("" when absent).
func metric(body, series string) string {
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			return v
		}
	}
	return ""
}

// TestMetricsAndHealth: the executor, a worker and a triggerer serve
// /healthz, /readyz and /metrics, and a task that fails once and then
// succeeds is counted: queued, started, finished by state, retries,
// heartbeats, durations and dispatch latency.
func TestMetricsAndHealth(t *testing.T) {
	parallel(t, shared)
	c := newCluster(t, clusterOpts{plain: true})
	workerAddr := testbin.FreeAddr(t)
	c.startWorker(workerOpts{queues: "default", extra: []string{"--listen", workerAddr}})
	tr := c.startTriggerer(triggererOpts{})
	workerURL, trURL := "http://"+workerAddr, "http://"+tr.addr

	for _, base := range []string{c.apiURL, workerURL, trURL} {
		testbin.Eventually(t, 10*time.Second, base+"/readyz", func() bool { return ready(base + "/readyz") })
		if code, _ := httpGet(t, base+"/healthz"); code != http.StatusOK {
			t.Errorf("%s/healthz: %d", base, code)
		}
	}

	// Fails on try 1 after a few heartbeats (300ms apart), succeeds on try 2.
	marker := c.path("tried")
	ti := c.submit(activity.TaskSpec{Queue: "default",
		Entrypoint:  sh("if [ ! -e " + marker + " ]; then touch " + marker + "; sleep 1; exit 1; fi"),
		RetryPolicy: activity.RetryPolicy{Retries: 1, Delay: activity.Duration(50 * time.Millisecond)}})
	if got := c.wait(ti.ID, 30*time.Second); got.State != activity.StateSuccess || got.TryNumber != 2 {
		t.Fatalf("task: %s try %d (%s)", got.State, got.TryNumber, got.Reason)
	}

	// The executor counts the end once its write is done; the wait may see
	// the record a moment before, and a scrape may fall between two series
	// of one end: wait until every one is there.
	var ex string
	wantSeries := map[string]string{
		`taskwire_executor_activities_queued_total{queue="default",reason="submit"}`:          "1",
		`taskwire_executor_activities_queued_total{queue="default",reason="retry"}`:           "1",
		`taskwire_executor_activities_started_total{queue="default"}`:                         "2",
		`taskwire_executor_activities_finished_total{queue="default",state="up_for_retry"}`:   "1",
		`taskwire_executor_activities_finished_total{queue="default",state="success"}`:        "1",
		`taskwire_executor_retries_total{queue="default"}`:                                    "1",
		`taskwire_executor_task_duration_seconds_count{queue="default",state="success"}`:      "1",
		`taskwire_executor_task_duration_seconds_count{queue="default",state="up_for_retry"}`: "1",
		`taskwire_executor_dispatch_latency_seconds_count{queue="default"}`:                   "2",
		`taskwire_nats_reconnects_total`:                                                      "0",
		`taskwire_nats_connected`:                                                             "1",
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, ex = httpGet(t, c.apiURL+"/metrics")
		all := true
		for series, want := range wantSeries {
			all = all && metric(ex, series) == want
		}
		if all || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for series, want := range wantSeries {
		if got := metric(ex, series); got != want {
			t.Errorf("executor %s = %q, want %q", series, got, want)
		}
	}
	if n, _ := strconv.Atoi(metric(ex, "taskwire_executor_heartbeats_total")); n < 1 {
		t.Errorf("executor heartbeats %q, want ≥ 1", metric(ex, "taskwire_executor_heartbeats_total"))
	}
	if metric(ex, "taskwire_executor_zombies_total") != "0" {
		t.Errorf("executor zombies %q, want 0", metric(ex, "taskwire_executor_zombies_total"))
	}

	// The worker counts a try once it is reported: wait for the last one.
	var wk string
	testbin.Eventually(t, 10*time.Second, "worker metrics of both tries", func() bool {
		_, wk = httpGet(t, workerURL+"/metrics")
		return metric(wk, `taskwire_worker_tasks_finished_total{queue="default",state="success"}`) == "1"
	})
	for series, want := range map[string]string{
		`taskwire_worker_tasks_started_total{queue="default"}`:                       "2",
		`taskwire_worker_tasks_finished_total{queue="default",state="up_for_retry"}`: "1",
		`taskwire_worker_task_duration_seconds_count{queue="default"}`:               "2",
		`taskwire_worker_running`: "0",
		`taskwire_nats_connected`: "1",
	} {
		if got := metric(wk, series); got != want {
			t.Errorf("worker %s = %q, want %q", series, got, want)
		}
	}
	for _, series := range []string{"taskwire_worker_task_heartbeats_total", "taskwire_worker_registry_heartbeats_total"} {
		if n, _ := strconv.Atoi(metric(wk, series)); n < 1 {
			t.Errorf("worker %s = %q, want ≥ 1", series, metric(wk, series))
		}
	}
	_, tm := httpGet(t, trURL+"/metrics")
	if metric(tm, "taskwire_triggerer_triggers_held") != "0" || metric(tm, "taskwire_nats_reconnects_total") != "0" {
		t.Errorf("triggerer metrics:\n%s", tm)
	}
}
