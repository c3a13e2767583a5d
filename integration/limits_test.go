package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/client"
	"github.com/taskwire/taskwire/internal/natstest"
	"github.com/taskwire/taskwire/queue"
	"github.com/taskwire/taskwire/queue/queuetest"
)

// chattySpec is a command task printing mb megabytes of 200-byte lines.
func chattySpec(mb int) activity.TaskSpec {
	return activity.TaskSpec{Queue: "default", Entrypoint: sh(fmt.Sprintf(
		"head -c %d /dev/zero | tr '\\0' x | fold -w 199", mb<<20))}
}

// logsStream is the LOGS stream's state as NATS has it.
func logsStream(t *testing.T, s natstest.ClientURLer) *queuetest.StreamInfo {
	t.Helper()
	info, err := queuetest.Stream(t.Context(), natstest.Connect(t, s), queue.StreamLogs)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// Issue 17, item 2: tasks that print more than the store holds neither
// wedge the cluster nor lose their state: each try's log is cut at its
// limit with a marker line, the LOGS stream drops its oldest lines at its
// own, and submits and state writes go on; an operator can purge logs.
func TestChattyTasksDoNotWedgeTheCluster(t *testing.T) {
	parallel(t, shared)
	const store = 48 << 20 // a small data disk
	ns := natstest.RunProcessWith(t, func(o *server.Options) { o.JetStreamMaxStore = store })
	c := newCluster(t, clusterOpts{nats: ns, load: true, extra: []string{"--storage-budget", strconv.Itoa(store)}})
	c.startWorker(workerOpts{concurrency: 2})

	// 6 × 12 MB of output: more than the whole store.
	var ids []string
	for range 6 {
		ids = append(ids, c.submit(chattySpec(12)).ID)
	}
	for _, id := range ids {
		if ti := c.wait(id, 4*time.Minute); ti.State != activity.StateSuccess {
			t.Fatalf("chatty task %s ended %s, want success (it must not fail for its log)", id, ti.State)
		}
	}
	info := logsStream(t, ns)
	limit := info.Config.MaxBytes
	if limit <= 0 || limit > store/2 {
		t.Fatalf("LOGS max bytes %d, want a limit within half the store of %d", limit, store)
	}
	if int64(info.State.Bytes) > limit {
		t.Errorf("LOGS holds %d bytes, over its limit %d", info.State.Bytes, limit)
	}
	// The newest try's log ends with the truncation marker and its counts.
	last := c.logs(ids[len(ids)-1])
	if !strings.Contains(last, "log truncated: this try's log reached its limit") ||
		!strings.Contains(last, "lines (") {
		t.Errorf("newest chatty log has no truncation marker; its end:\n%s", tailOf(last, 600))
	}
	// The cluster still takes work and writes state.
	after := c.submit(activity.TaskSpec{Queue: "default", Entrypoint: sh("echo still-alive")})
	if ti := c.wait(after.ID, time.Minute); ti.State != activity.StateSuccess {
		t.Fatalf("task after the chatty ones ended %s", ti.State)
	}
	if !strings.Contains(c.logs(after.ID), "still-alive") {
		t.Errorf("the later task's log line is missing")
	}

	// Purge: one task, nothing older than an hour, then all.
	out, errOut, code := c.cli("logs", "purge", "--task", after.ID)
	if code != 0 || !strings.HasPrefix(out, "purged ") {
		t.Fatalf("logs purge --task: exit %d: %s%s", code, out, errOut)
	}
	if s := c.logs(after.ID); s != "" {
		t.Errorf("logs after purge --task: %q", s)
	}
	var resp struct{ Purged uint64 }
	c.cliJSON(&resp, "logs", "purge", "--older-than", "1h")
	if resp.Purged != 0 {
		t.Errorf("purge --older-than 1h removed %d messages, want 0", resp.Purged)
	}
	c.cliJSON(&resp, "logs", "purge", "--all")
	if resp.Purged == 0 || logsStream(t, ns).State.Msgs != 0 {
		t.Errorf("purge --all removed %d messages, %d left", resp.Purged, logsStream(t, ns).State.Msgs)
	}
	if _, errOut, code := c.cli("logs", "purge", "--all", "--task", "x"); code != 2 || !strings.Contains(errOut, "exactly one") {
		t.Errorf("purge with two choices: exit %d: %s", code, errOut)
	}
}

func tailOf(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// vmKB reads a "VmXxx:" field of /proc/PID/status, in kB.
func vmKB(t *testing.T, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.Atoi(strings.Fields(rest)[0])
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// Issue 17, item 4: reading a big log streams it with bounded executor
// memory, the CLI does not time out while data flows, and --tail works.
func TestBigLogStreamsWithBoundedMemory(t *testing.T) {
	parallel(t, shared)
	mb := 48
	if s := os.Getenv("TASKWIRE_BIG_LOG_MB"); s != "" {
		mb, _ = strconv.Atoi(s)
	}
	c := newCluster(t, clusterOpts{load: true, logLevel: "info", extra: []string{"--log-max-bytes-per-try", "-1"}})
	c.startWorker(workerOpts{})
	ti := c.submit(chattySpec(mb))
	if got := c.wait(ti.ID, 5*time.Minute); got.State != activity.StateSuccess {
		t.Fatalf("task ended %s", got.State)
	}
	pid := c.exec.Cmd.Process.Pid
	before := vmKB(t, pid, "VmHWM")

	// The whole log as the CLI asks for it, counted as it comes (parsing
	// each line here would measure this test, not the executor).
	start := time.Now()
	resp, err := http.Get(c.apiURL + "/api/v1/task-instances/" + ti.ID + "/logs")
	if err != nil {
		t.Fatal(err)
	}
	var lines, size int
	buf := make([]byte, 256<<10)
	for {
		n, err := resp.Body.Read(buf)
		size += n
		lines += bytes.Count(buf[:n], []byte("\n"))
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read the log: %v", err)
		}
	}
	resp.Body.Close()
	took := time.Since(start)
	after := vmKB(t, pid, "VmHWM")
	wantLines := mb << 20 / 200
	if lines < wantLines {
		t.Fatalf("read %d lines, want at least %d", lines, wantLines)
	}
	t.Logf("read %d MB log (%d lines, %d bytes of JSON) in %s; executor peak RSS %d MB before, %d MB after",
		mb, lines, size, took.Round(time.Millisecond), before>>10, after>>10)
	if grew := (after - before) >> 10; grew > 64 {
		t.Errorf("executor peak RSS grew by %d MB reading a %d MB log, want bounded (≤ 64 MB, about a log's worth before streaming)", grew, mb)
	}

	out, errOut, code := c.cli("logs", ti.ID, "--tail", "3", "--json")
	if code != 0 {
		t.Fatalf("logs --tail: exit %d: %s", code, errOut)
	}
	got := strings.Split(strings.TrimSpace(out), "\n")
	if len(got) != 3 {
		t.Fatalf("logs --tail 3 printed %d lines:\n%s", len(got), tailOf(out, 2000))
	}
	// The last line is the worker's own closing line, the one before it the
	// task's last output line.
	if !strings.Contains(got[1], "xxxxx") && !strings.Contains(got[2], "xxxxx") {
		t.Errorf("logs --tail 3 are not the log's end:\n%s", out)
	}
}

// apiPost posts body to the public API and returns the status and body.
func apiPost(t *testing.T, url string, body []byte) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Issue 17, item 8: ids that break URLs and subjects are refused as
// Airflow's are, oversize bodies are 413 naming the limit in both APIs (and
// a worker does not retry one), and error answers do not echo a huge value.
func TestIDsAndSizesAreRefusedClearly(t *testing.T) {
	parallel(t, shared)
	c := newCluster(t, clusterOpts{plain: true})
	c.startWorker(workerOpts{})
	submitURL := c.apiURL + "/api/v1/activities"
	spec := func(mod func(map[string]any)) []byte {
		m := map[string]any{"queue": "default", "command": []string{"true"}}
		mod(m)
		b, _ := json.Marshal(m)
		return b
	}
	for _, id := range []string{".", "..", "a..b"} {
		for _, field := range []string{"dag_id", "task_id", "run_id"} {
			status, body := apiPost(t, submitURL, spec(func(m map[string]any) { m[field] = id }))
			if status != http.StatusBadRequest || !strings.Contains(body, field) {
				t.Errorf("%s %q: %d %s, want 400 naming the field", field, id, status, body)
			}
		}
	}
	huge := strings.Repeat("y", 100<<10)
	status, body := apiPost(t, submitURL, spec(func(m map[string]any) { m["dag_id"] = huge }))
	if status != http.StatusBadRequest || len(body) > 1024 {
		t.Errorf("100 KB dag_id: %d, %d bytes of answer, want 400 with a short answer", status, len(body))
	}
	// The CLI refuses an id that cannot be a path segment before sending.
	if _, errOut, code := c.cli("xcom", "get", "d", "..", "t", "k"); code != 2 || !strings.Contains(errOut, "path segment") {
		t.Errorf("xcom get with run id ..: exit %d: %s", code, errOut)
	}

	// 2 MB of params: 413 naming the limit, nothing queued.
	status, body = apiPost(t, submitURL, spec(func(m map[string]any) { m["params"] = map[string]any{"blob": strings.Repeat("z", 2<<20)} }))
	if status != http.StatusRequestEntityTooLarge || !strings.Contains(body, "1048576") {
		t.Errorf("2 MB params: %d %s, want 413 naming the limit of 1048576 bytes", status, tailOf(body, 400))
	}
	// Just under the HTTP limit, over what a record may hold: 413 still.
	status, body = apiPost(t, submitURL, spec(func(m map[string]any) { m["params"] = map[string]any{"blob": strings.Repeat("z", 1<<20-200)} }))
	if status != http.StatusRequestEntityTooLarge || !strings.Contains(body, "1048576") {
		t.Errorf("1 MB params: %d %s, want 413 naming the limit", status, tailOf(body, 400))
	}
	if _, err := c.api.Submit(t.Context(), activity.TaskSpec{Queue: "default", Entrypoint: sh("true"),
		Params: map[string]any{"blob": strings.Repeat("z", 2<<20)}}); !errors.Is(err, client.ErrTooLarge) {
		t.Errorf("Go client submit of 2 MB params: %v, want ErrTooLarge", err)
	}

	// A 3 MB XCom from a Go SDK task: the task fails at once with the
	// reason; the worker does not retry the 413.
	start := time.Now()
	ti := c.submit(goTask("push", map[string]any{"bytes": 3 << 20}))
	got := c.wait(ti.ID, time.Minute)
	if got.State != activity.StateFailed {
		t.Fatalf("3 MB xcom push ended %s, want failed", got.State)
	}
	logs := c.logs(ti.ID)
	if !strings.Contains(logs, "413") || !strings.Contains(logs, "1048576") {
		t.Errorf("the task's log does not say 413 and the limit:\n%s", tailOf(logs, 2000))
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("the oversize push took %s to fail: retried?", took)
	}
}
