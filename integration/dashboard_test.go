package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/client"
	"github.com/taskwire/taskwire/internal/testbin"
)

// screenshotEnv names the PNG file the dashboard test writes a screenshot
// of the overview to, absolute or relative to the module root (e.g.
// docs/dashboard.png), and beside it one of a task's page (…-task.png).
// Unset, it writes none.
const screenshotEnv = "TASKWIRE_SCREENSHOT"

// browser is a headless Chromium driven through the DevTools protocol.
type browser struct {
	t   *testing.T
	ctx context.Context // the tab's chromedp context
	out *lockedWriter
}

// startBrowser starts Debian's Chromium headless with a fresh profile and
// the flags that keep it off the network; it is closed at cleanup. A
// missing Chromium fails the test: the dashboard is not tested without it.
func startBrowser(t *testing.T, width, height int) *browser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not found (%v): the dashboard test needs Debian's chromium package: apt-get install -y chromium", err)
	}
	out := &lockedWriter{b: &strings.Builder{}}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("password-store", "basic"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
		chromedp.CombinedOutput(out),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	b := &browser{t: t, ctx: ctx, out: out}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := chromedp.Cancel(cctx); err != nil && !errors.Is(err, context.Canceled) {
			t.Logf("close chromium: %v", err)
		}
		cancelTab()
		cancelAlloc() // waits for the browser process to exit
	})
	// The first run starts the browser: no timeout on it (it would bound
	// the browser's life), the test's deadline bounds it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v\n%s", err, out)
	}
	return b
}

// do runs a named step with a deadline; on failure it reports what the
// page shows.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v\npage shows:\n%s", what, err, b.pageText())
	}
}

// waitFor polls a JavaScript expression in the page until it is true.
func (b *browser) waitFor(what, expr string) {
	b.t.Helper()
	b.do(what, chromedp.Steps(func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(0))(ctx, t)
		return chromedp.Void{}, err
	}))
}

// text returns the text of the first element matching a CSS selector.
func (b *browser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v\npage shows:\n%s", sel, err, b.pageText())
	}
	return s
}

// pageText is the page's visible text, for failure messages.
func (b *browser) pageText() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ''`))
	if err != nil {
		return fmt.Sprintf("(page text unavailable: %v)", err)
	}
	return s
}

// show goes to a route of the dashboard's page without reloading it.
func (b *browser) show(hash string) {
	b.t.Helper()
	b.do("go to "+hash, chromedp.Steps(func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`location.hash = %s`, strconv.Quote(hash)))(ctx, t)
		return chromedp.Void{}, err
	}))
}

// screenshot writes a PNG of the whole page to the file named by
// $TASKWIRE_SCREENSHOT, with suffix before its extension; with the variable
// unset it does nothing.
func (b *browser) screenshot(suffix string) {
	b.t.Helper()
	path := os.Getenv(screenshotEnv)
	if path == "" {
		return
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join("..", path) // relative to the module root
	}
	ext := filepath.Ext(path)
	path = strings.TrimSuffix(path, ext) + suffix + ext
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot written to %s", path)
}

// lockedWriter collects Chromium's output, written from chromedp's goroutines.
type lockedWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestDashboardInBrowser drives the dashboard in headless Chromium against
// a real cluster: it signs in with the operator token, sees the tasks,
// queues and triggerer, opens a task and reads its logs, cancels a running
// task and retries a failed one, and shows the API's 404 for an unknown id.
func TestDashboardInBrowser(t *testing.T) {
	parallel(t, shared)
	const token = "dash-secret"
	b := startBrowser(t, 1440, 1000)
	c := newCluster(t, clusterOpts{plain: true, operatorToken: token, logLevel: "info"})
	c.startWorker(workerOpts{extra: []string{"--worker-id", "dash-worker"}})
	c.startTriggerer(triggererOpts{name: "triggerer-1"})

	ok := c.submit(activity.TaskSpec{Queue: "default", DagID: "etl_daily", TaskID: "extract",
		Entrypoint: sh(`echo "hello from the dashboard"; echo "rows=1200" >&2`)})
	gate := c.path("release")
	flaky := c.submit(activity.TaskSpec{Queue: "default", DagID: "reports", TaskID: "publish",
		Entrypoint: sh(`if [ "$TASKWIRE_TRY_NUMBER" -lt 2 ]; then echo "upstream not ready" >&2; exit 3; fi
echo "second try running"; while [ ! -f ` + gate + ` ]; do sleep 0.05; done; echo published`)})
	pidFile := c.path("pid")
	long := c.submit(activity.TaskSpec{Queue: "default", DagID: "ml", TaskID: "train",
		Entrypoint: sh(`echo $$ > ` + pidFile + `; echo "epoch 1 started"; exec sleep 300`)})
	deferred := goTask("wait_event", map[string]any{"name": "dashboard.release"})
	deferred.DagID = "ingest"
	waiting := c.submit(deferred)
	// More states for the overview: a failed task, a running one, and one
	// pending on a queue no worker serves.
	doomed := c.submit(activity.TaskSpec{Queue: "default", DagID: "reports", TaskID: "email",
		Entrypoint: sh(`echo "smtp: connection refused" >&2; exit 1`)})
	busy := c.submit(activity.TaskSpec{Queue: "default", DagID: "ml", TaskID: "evaluate",
		Entrypoint: sh(`echo "evaluating"; exec sleep 300`)})
	c.submit(activity.TaskSpec{Queue: "gpu", DagID: "ml", TaskID: "finetune", Entrypoint: sh(`true`)})
	for _, task := range []string{"transform", "load"} {
		c.submit(activity.TaskSpec{Queue: "default", DagID: "etl_daily", TaskID: task, Entrypoint: sh(`echo ` + task)})
	}
	if ti := c.wait(ok.ID, 30*time.Second); ti.State != activity.StateSuccess {
		t.Fatalf("ok task: %s (%s)", ti.State, ti.Reason)
	}
	if ti := c.wait(flaky.ID, 30*time.Second); ti.State != activity.StateFailed {
		t.Fatalf("flaky task: %s (%s), want failed on its first try", ti.State, ti.Reason)
	}
	c.waitState(long.ID, activity.StateRunning, 20*time.Second)
	c.waitState(busy.ID, activity.StateRunning, 20*time.Second)
	c.wait(doomed.ID, 30*time.Second)
	c.waitState(waiting.ID, activity.StateDeferred, 20*time.Second)

	// The page asks for the token: the API refuses it without one, and a
	// wrong one is refused too.
	b.do("open the dashboard", chromedp.Navigate(c.apiURL+"/"), chromedp.WaitVisible(chromedp.CSS("#token-input")))
	b.do("enter a wrong token", chromedp.SendKeys(chromedp.CSS("#token-input"), "wrong"), chromedp.Click(chromedp.CSS("#token-submit")))
	b.waitFor("the wrong token refused", `document.querySelector('#token-dialog').open &&
		document.querySelector('#token-reason').textContent.includes('refused this token')`)
	b.do("enter the token", chromedp.SendKeys(chromedp.CSS("#token-input"), token), chromedp.Click(chromedp.CSS("#token-submit")))

	// The overview lists the tasks, the queue and the triggerer.
	for _, ti := range []*activity.TaskInstance{ok, flaky, long, waiting} {
		b.do("see task "+ti.TaskID, chromedp.WaitVisible(chromedp.CSS(`#tasks tr[data-id="`+ti.ID+`"]`)))
	}
	b.waitFor("the triggerer live", `!!document.querySelector('#triggerers tr[data-triggerer="triggerer-1"] .s-live')`)
	b.waitFor("the worker live, with its queues", `(() => {
		const r = document.querySelector('#workers tr[data-worker="dash-worker"]');
		return r && r.querySelector('.s-live') && r.textContent.includes('default') && r.textContent.includes('go'); })()`)
	b.waitFor("the default queue with its running task", `(() => {
		const r = document.querySelector('#queues tr[data-queue="default"]');
		return r && r.children[3].textContent === '2'; })()`)
	b.waitFor("the pools, default_pool without a limit", `(() => {
		const r = document.querySelector('#pools tr[data-pool="default_pool"]');
		return r && r.children[0].textContent === 'default_pool' && r.children[1].classList.contains('muted'); })()`)
	if got := b.text(`#tasks tr[data-id="` + flaky.ID + `"] .badge`); got != "failed" {
		t.Errorf("flaky task's state in the list: %q, want failed", got)
	}
	// Filtering by state keeps only the failed task.
	b.show("#/?state=failed")
	b.do("filter failed", chromedp.WaitVisible(chromedp.CSS(`#tasks tr[data-id="`+flaky.ID+`"]`)))
	b.do("filter failed", chromedp.WaitVisible(chromedp.CSS(`#tasks tr[data-id="`+doomed.ID+`"]`)))
	b.waitFor("only failed tasks listed", `document.querySelectorAll('#tasks tbody tr').length === 2 &&
		[...document.querySelectorAll('#tasks tbody tr')].every((r) => r.dataset.state === 'failed')`)

	// One task: its state, tries and logs.
	b.show("#/")
	b.do("open the ok task", chromedp.WaitVisible(chromedp.CSS(`#tasks tr[data-id="`+ok.ID+`"] a.task-link`)),
		chromedp.Click(chromedp.CSS(`#tasks tr[data-id="`+ok.ID+`"] a.task-link`)),
		chromedp.WaitVisible(chromedp.CSS(`#ti-state .s-success`)))
	b.waitFor("the ok task's logs", `document.querySelector('#logs').textContent.includes('hello from the dashboard') &&
		document.querySelector('#logs').textContent.includes('rows=1200')`)
	if got := b.text("#ti-title"); !strings.Contains(got, "etl_daily") || !strings.Contains(got, "extract") {
		t.Errorf("task title %q, want etl_daily / extract", got)
	}

	// A deferred task shows its trigger.
	b.show("#/ti/" + waiting.ID)
	b.do("see the trigger", chromedp.WaitVisible(chromedp.CSS(`#ti-state .s-deferred`)), chromedp.WaitVisible(chromedp.CSS(`#trigger-props`)))
	if got := b.text("#trigger-props"); !strings.Contains(got, "dashboard.release") {
		t.Errorf("trigger shown as %q, want its event name", got)
	}

	// An unknown id shows the API's 404 message.
	b.show("#/ti/no-such-task")
	b.do("unknown task", chromedp.WaitVisible(chromedp.CSS("#ti-error")))
	if got := b.text("#ti-error"); !strings.Contains(got, "404") || !strings.Contains(got, "task instance no-such-task: not found") {
		t.Errorf("unknown task shows %q, want the API's 404 message", got)
	}

	// Cancel the running task: its live logs show, two clicks cancel it,
	// and its process dies.
	pid := pidOf(t, pidFile)
	b.show("#/ti/" + long.ID)
	b.do("open the running task", chromedp.WaitVisible(chromedp.CSS(`#ti-state .s-running`)))
	b.waitFor("the running task's live logs", `document.querySelector('#logs').textContent.includes('epoch 1 started') &&
		document.querySelector('#logs-info').textContent.includes('live')`)
	b.do("cancel, then confirm", chromedp.WaitEnabled(chromedp.CSS("#btn-cancel")), chromedp.Click(chromedp.CSS("#btn-cancel")))
	b.waitFor("the cancel button armed", `document.querySelector('#btn-cancel').textContent === 'Confirm cancel'`)
	b.do("confirm cancel", chromedp.Click(chromedp.CSS("#btn-cancel")), chromedp.WaitVisible(chromedp.CSS(`#ti-state .s-cancelled`)))
	if ti, err := c.api.Get(t.Context(), long.ID); err != nil || ti.State != activity.StateCancelled {
		t.Fatalf("after the dashboard's cancel the API says %v, %v; want cancelled", ti, err)
	}
	testbin.Eventually(t, 10*time.Second, "the cancelled task's process to die", func() bool { return !testbin.Alive(pid) })
	b.waitFor("cancel disabled once cancelled", `document.querySelector('#btn-cancel').disabled && document.querySelector('#btn-retry').disabled`)

	// Retry the failed task: try 2 is queued and runs, its logs follow.
	b.show("#/ti/" + flaky.ID)
	b.do("open the failed task", chromedp.WaitVisible(chromedp.CSS(`#ti-state .s-failed`)))
	b.waitFor("the failed try's logs", `document.querySelector('#logs').textContent.includes('upstream not ready')`)
	b.do("retry", chromedp.WaitEnabled(chromedp.CSS("#btn-retry")), chromedp.Click(chromedp.CSS("#btn-retry")))
	b.waitFor("try 2 queued or running", `!!document.querySelector('#ti-state .s-queued, #ti-state .s-running') &&
		!!document.querySelector('#tries tr[data-try="2"]')`)
	b.waitFor("try 2 running with its logs", `!!document.querySelector('#ti-state .s-running') &&
		document.querySelector('#logs').textContent.includes('second try running')`)
	if ti, err := c.api.Get(t.Context(), flaky.ID); err != nil || ti.State != activity.StateRunning || ti.TryNumber != 2 {
		t.Fatalf("after the dashboard's retry the API says %+v, %v; want running try 2", ti, err)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	b.do("the retried task succeeds", chromedp.WaitVisible(chromedp.CSS(`#ti-state .s-success`)))
	b.waitFor("the second try's last log line", `document.querySelector('#logs').textContent.includes('published') &&
		!document.querySelector('#logs-info').textContent.includes('live')`)
	b.screenshot("-task")
	// A finished task is not retried: the API says why.
	if _, err := c.api.Retry(t.Context(), flaky.ID); !errors.Is(err, client.ErrConflict) {
		t.Errorf("retry of a succeeded task: %v, want 409", err)
	}

	// Back to the overview, with every state shown, for the screenshot.
	b.show("#/")
	b.do("overview again", chromedp.WaitVisible(chromedp.CSS(`#tasks tr[data-id="`+long.ID+`"] .s-cancelled`)))
	b.waitFor("the queues' counts", `(() => {
		const r = document.querySelector('#queues tr[data-queue="default"]');
		const g = document.querySelector('#queues tr[data-queue="gpu"]');
		return r && Number(r.children[6].textContent) >= 5 && r.children[7].textContent === '1' &&
			g && g.children[1].textContent === '1'; })()`)
	b.screenshot("")

	// Forgetting the token: the next API call is refused and the page asks again.
	b.do("forget the token", chromedp.Click(chromedp.CSS("#forget-token")), chromedp.WaitVisible(chromedp.CSS("#token-input")))
}
