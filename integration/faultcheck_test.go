package integration

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/client"
	"github.com/taskwire/taskwire/internal/natstest"
	"github.com/taskwire/taskwire/internal/testbin"
	"github.com/taskwire/taskwire/queue"
	"github.com/taskwire/taskwire/queue/queuetest"
)

// submitMany submits n tasks, spec(i) each, eight at a time, and returns
// their ids in order. With c.submitAPIs set it takes turns among them.
func (c *cluster) submitMany(n int, spec func(i int) activity.TaskSpec) []string {
	c.t.Helper()
	apis := c.submitAPIs
	if len(apis) == 0 {
		apis = []*client.Client{c.api}
	}
	ids := make([]string, n)
	g, ctx := errgroup.WithContext(context.Background())
	g.SetLimit(8)
	for i := range n {
		g.Go(func() error {
			sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			ti, err := apis[i%len(apis)].Submit(sctx, spec(i))
			if err != nil {
				return fmt.Errorf("submit %d: %w", i, err)
			}
			ids[i] = ti.ID
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		c.t.Fatal(err)
	}
	return ids
}

// countPoll is how often a wait polls count: each answer costs the executor
// a list (for finished states, a read of up to 256 stored records), which
// every 20ms during a storm of thousands of tasks took CPU from the storm.
const countPoll = 200 * time.Millisecond

// count is how many task instances are in one of states.
func (c *cluster) count(states ...activity.State) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, total, err := c.api.List(ctx, client.ListOpts{States: states, Limit: 1})
	return total, err
}

// waitFinished waits until n task instances are finished (terminal), logging
// progress, and fails the test on timeout.
func (c *cluster) waitFinished(n int, timeout time.Duration) {
	c.t.Helper()
	start, last := time.Now(), time.Now()
	testbin.EventuallyEvery(c.t, timeout, countPoll, fmt.Sprintf("%d task instances to finish", n), func() bool {
		got, err := c.count(activity.StateSuccess, activity.StateFailed, activity.StateSkipped, activity.StateRemoved, activity.StateCancelled)
		if err != nil {
			return false
		}
		if time.Since(last) > 5*time.Second {
			c.t.Logf("%s: %d/%d finished", time.Since(start).Round(time.Second), got, n)
			last = time.Now()
		}
		return got >= n
	})
}

// records fetches the task instances with the given ids.
func (c *cluster) records(ids []string) map[string]*activity.TaskInstance {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tis, total, err := c.api.List(ctx, client.ListOpts{Limit: len(ids) + 100})
	if err != nil {
		c.t.Fatal(err)
	}
	if total != len(tis) {
		c.t.Fatalf("list answered %d of %d task instances", len(tis), total)
	}
	byID := make(map[string]*activity.TaskInstance, len(tis))
	for _, ti := range tis {
		byID[ti.ID] = ti
	}
	return byID
}

// onceReport is what checkSucceededOnce found.
type onceReport struct {
	tasks     int // task instances checked
	tries     int // tries recorded in all
	reruns    int // side effects of tries the executor did not count as the success
	succeeded int
}

// sideEffect is the shell that records one run of a task in file: a line
// "<ti_id> <try>".
func sideEffect(file string) string {
	return `echo "$TASKWIRE_TI_ID $TASKWIRE_TRY_NUMBER" >> ` + file
}

// checkSucceededOnce checks, for every id, that the executor's record says
// success on exactly one try, and that the tasks' own side effects (lines
// "<ti_id> <try>" in file, see sideEffect) show the successful try ran to
// its end exactly once. A try the executor failed (its worker died after
// the side effect) may have left a line too: that is a rerun, counted, not
// a second success.
func checkSucceededOnce(t *testing.T, c *cluster, ids []string, file string) onceReport {
	t.Helper()
	tis := c.records(ids)
	runs := map[string]map[int]int{} // ti → try → lines
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		id, try, ok := strings.Cut(sc.Text(), " ")
		n, err := strconv.Atoi(try)
		if !ok || err != nil {
			t.Fatalf("side-effect line %q", sc.Text())
		}
		if runs[id] == nil {
			runs[id] = map[int]int{}
		}
		runs[id][n]++
	}
	var rep onceReport
	lost := 0
	for _, id := range ids {
		ti := tis[id]
		if ti == nil {
			t.Errorf("%s: no record", id)
			lost++
			continue
		}
		rep.tasks++
		rep.tries += len(ti.Tries)
		successes := 0
		for _, tr := range ti.Tries {
			if tr.State == activity.StateSuccess {
				successes++
			}
		}
		if ti.State != activity.StateSuccess || successes != 1 {
			lost++
			if lost <= 5 {
				t.Errorf("%s: %s on try %d with %d successful tries (%s); tries %+v", id, ti.State, ti.TryNumber, successes, ti.Reason, ti.Tries)
			}
			continue
		}
		rep.succeeded++
		for try, n := range runs[id] {
			switch {
			case try == ti.TryNumber && n != 1:
				t.Errorf("%s: the successful try %d ran %d times", id, try, n)
			case try != ti.TryNumber:
				rep.reruns += n
			}
		}
		if runs[id][ti.TryNumber] == 0 {
			t.Errorf("%s: success on try %d left no side effect", id, ti.TryNumber)
		}
		delete(runs, id)
	}
	for id := range runs {
		t.Errorf("side effect of %s, which is not one of the submitted tasks", id)
	}
	if lost > 0 {
		t.Fatalf("%d of %d tasks did not succeed exactly once", lost, len(ids))
	}
	return rep
}

// checkHistories checks every revision of each record that the
// task_instances bucket keeps: it decodes, names its task instance, never
// goes back a try, and changes state only along the state graph. It
// returns how many revisions it checked.
func checkHistories(t *testing.T, c *cluster, ids []string) int {
	t.Helper()
	nc := natstest.Connect(t, c.nats)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	revisions := 0
	for _, id := range ids {
		hist, err := queuetest.History(ctx, nc, queue.BucketTaskInstances, id)
		if err != nil {
			t.Fatalf("history of %s: %v", id, err)
		}
		var prev *activity.TaskInstance
		for _, e := range hist {
			revisions++
			ti, err := activity.UnmarshalRecord(e.Value())
			if err != nil || ti.ID != id {
				t.Fatalf("%s revision %d: corrupt record %q: %v", id, e.Revision(), e.Value(), err)
			}
			if prev != nil {
				if ti.TryNumber < prev.TryNumber {
					t.Errorf("%s revision %d: try %d after try %d", id, e.Revision(), ti.TryNumber, prev.TryNumber)
				}
				if ti.State != prev.State && !activity.CanTransition(prev.State, ti.State) {
					t.Errorf("%s revision %d: illegal %s → %s", id, e.Revision(), prev.State, ti.State)
				}
			}
			prev = ti
		}
	}
	return revisions
}
