package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestDashboardDagsInBrowser: the DAGs page lists the diamond with its last
// run, the DAG's grid shows runs × tasks, and the run's graph shows the
// tasks coloured by state, their edges, and c mapped ×3.
// TASKWIRE_SCREENSHOT=docs/dashboard.png writes docs/dashboard-dags.png,
// docs/dashboard-dag-grid.png and docs/dashboard-dag-run.png.
func TestDashboardDagsInBrowser(t *testing.T) {
	parallel(t, shared)
	b := startBrowser(t, 1280, 800)
	c := newCluster(t, clusterOpts{plain: true, logLevel: "info"})
	c.startWorker(workerOpts{queues: "default"})
	c.applyDag(diamondYAML)
	c.applyDag("dag_id: nightly\nschedule: '0 3 * * *'\ntimezone: Europe/Paris\ntasks:\n  - {task_id: backup, queue: default, command: [true]}\n")
	for _, r := range []string{"r1", "r2"} {
		if out, code := c.dagCLI(90*time.Second, "runs", "trigger", "diamond", "--run-id", r, "--wait"); code != 1 {
			t.Fatalf("run %s: exit %d\n%s", r, code, out)
		}
	}

	b.do("open the DAGs page", chromedp.Navigate(c.apiURL+"/#/dags"),
		chromedp.WaitVisible(chromedp.CSS(`#dags tr[data-dag="diamond"] a.dag-link`)))
	b.waitFor("diamond's last runs, failed", `document.querySelectorAll('#dags tr[data-dag="diamond"] .run-dot.s-failed').length === 2`)
	if got := b.text(`#dags tr[data-dag="nightly"]`); !strings.Contains(got, "0 3 * * * (Europe/Paris)") {
		t.Errorf("nightly row %q lacks its schedule", got)
	}
	b.screenshot("-dags")

	b.do("open the diamond's grid", chromedp.Click(chromedp.CSS(`#dags tr[data-dag="diamond"] a.dag-link`)),
		chromedp.WaitVisible(chromedp.CSS(`#dag-grid .cell-box`)))
	b.waitFor("a grid of 5 tasks × 2 runs", `document.querySelectorAll('#dag-grid tbody tr').length === 5 &&
		document.querySelectorAll('#dag-grid tbody tr')[0].querySelectorAll('.cell-box').length === 2`)
	b.waitFor("e upstream_failed and c mapped ×3 in the grid", `(() => {
		const rows = [...document.querySelectorAll('#dag-grid tbody tr')];
		const row = (id) => rows.find((r) => r.querySelector('.task-id').textContent === id);
		return row('e').querySelector('.cell-box.s-upstream_failed') && row('c').querySelector('.cell-box.s-success').textContent === '3'; })()`)
	b.screenshot("-dag-grid")

	b.show("#/dags/diamond/runs/r1")
	b.waitFor("the run's graph", `document.querySelectorAll('#run-graph g.node').length === 5 &&
		document.querySelectorAll('#run-graph path.edge').length === 5`)
	b.waitFor("nodes coloured by state", `(() => {
		const st = (t) => document.querySelector('#run-graph g.node[data-task="' + t + '"]').dataset.state;
		return st('a') === 'success' && st('b') === 'failed' && st('c') === 'success' && st('d') === 'success' && st('e') === 'upstream_failed'; })()`)
	b.waitFor("mapped node c with its count ×3", `document.querySelector('#run-graph g.node[data-task="c"] .sub').textContent.includes('×3')`)
	b.waitFor("the task instances listed", `document.querySelectorAll('#run-tis tr').length === 7`)
	b.screenshot("-dag-run")
}
