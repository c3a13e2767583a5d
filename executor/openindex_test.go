package executor

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/execution"
	"github.com/taskwire/taskwire/internal/natstest"
	"github.com/taskwire/taskwire/queue"
)

// snapshotIDs lists the unfinished record ids of the snapshot a clean
// stop wrote, and how many chunks hold them.
func snapshotIDs(t *testing.T, qc *queue.Client) ([]string, int) {
	t.Helper()
	conf := qc.Bucket(queue.BucketConfig)
	e, err := conf.Get(t.Context(), countsSnapshotKey)
	if err != nil {
		t.Fatalf("read the snapshot: %v", err)
	}
	var snap countsSnapshot
	if err := json.Unmarshal(e.Value(), &snap); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range snap.OpenChunks {
		ce, err := conf.Get(t.Context(), openChunkKey(i))
		if err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		var c openChunk
		if err := json.Unmarshal(ce.Value(), &c); err != nil || c.Revision != snap.Revision {
			t.Fatalf("chunk %d: %+v, %v; want revision %d", i, c, err, snap.Revision)
		}
		ids = append(ids, c.IDs...)
	}
	slices.Sort(ids)
	return ids, snap.OpenChunks
}

// total is a list's total of the records in state st.
func total(t *testing.T, e *Executor, st activity.State) int {
	t.Helper()
	p, err := e.List(t.Context(), Filter{States: []activity.State{st}, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	return p.Total
}

// TestRestartReadsOnlyUnfinishedRecords: an executor started on a store
// without a snapshot reads every record once; its clean stop lists the
// unfinished ones in the snapshot (in several chunks: the chunk size is
// made small), and the next start decodes only the
// unfinished records (not one of the hundreds finished), its totals are
// exact from the counts' snapshot, and what was unfinished is recovered:
// a running try without heartbeats is a zombie and retried, a pool's
// holder and waiting task keep their admission, a waiting retry is
// queued, a queued record is held as queued. A write by
// another since the snapshot makes the next start read every record
// again (and still count right).
func TestRestartReadsOnlyUnfinishedRecords(t *testing.T) {
	t.Parallel()
	ns := natstest.RunServer(t)
	qc, err := queue.New(t.Context(), natstest.Connect(t, ns), queue.Config{})
	if err != nil {
		t.Fatal(err)
	}
	const old, made = 150, 150
	base := time.Now().UTC().Add(-time.Hour)
	for i := range old {
		putRecord(t, qc, fmt.Sprintf("old%03d", i), "done", activity.StateSuccess, base.Add(time.Duration(i)*time.Millisecond))
	}
	putRecord(t, qc, "legacy", "legacy", activity.StateQueued, base)

	// 1. No snapshot: every record read.
	f1 := startOn(t, qc, Config{ZombieThreshold: time.Hour})
	if d := f1.ex.store.decoded.Load(); d < old+1 {
		t.Fatalf("first start decoded %d records, want all %d", d, old+1)
	}
	f1.ex.store.chunkBytes = 100 // two ids a chunk
	for i := range made {
		spec := activity.TaskSpec{Queue: "done", Entrypoint: activity.Entrypoint{Command: []string{"x"}}}.WithDefaults(time.Now())
		ti := activity.NewTaskInstance(fmt.Sprintf("01a20000-0000-7000-8000-%012d", i), spec, time.Now())
		ti.State = activity.StateSuccess
		if err := f1.ex.store.create(t.Context(), ti); err != nil {
			t.Fatal(err)
		}
	}
	// One task through its whole life (unfinished, then finished).
	ended := f1.submit(activity.TaskSpec{Queue: "done", Entrypoint: poolCmd})
	act := f1.tryTake("done", 5*time.Second)
	f1.end(ended.ID, f1.start(act))
	// Unfinished: a pool's holder (running: a zombie for the next
	// executor) and a task waiting for its slot; a retry waiting.
	f1.setPool("p", 1, false)
	f1.waitPool("p", func(p activity.Pool) bool { return p.Slots == 1 })
	holder := f1.submit(activity.TaskSpec{Queue: "pooled", Entrypoint: poolCmd, Pool: "p",
		RetryPolicy: activity.RetryPolicy{Retries: 1, Delay: activity.Duration(10 * time.Millisecond)}})
	f1.start(f1.tryTake("pooled", 5*time.Second))
	waiting := f1.submit(activity.TaskSpec{Queue: "pooled", Entrypoint: poolCmd, Pool: "p"})
	f1.waitPool("p", func(p activity.Pool) bool { return p.Occupied == 1 && p.Waiting == 1 })
	retry := f1.submit(activity.TaskSpec{Queue: "retry", Entrypoint: poolCmd,
		RetryPolicy: activity.RetryPolicy{Retries: 1, Delay: activity.Duration(2 * time.Second)}})
	tok := f1.start(f1.tryTake("retry", 5*time.Second))
	if err := f1.ec.Task(retry.ID, tok).State(t.Context(), execution.StateRequest{State: activity.StateUpForRetry, Reason: "exit code 1"}); err != nil {
		t.Fatal(err)
	}
	f1.eventually("up for retry", func(ti *activity.TaskInstance) bool { return ti.State == activity.StateUpForRetry }, retry.ID)
	wantSuccess := old + made + 1
	if n := total(t, f1.ex, activity.StateSuccess); n != wantSuccess {
		t.Fatalf("success total %d, want %d", n, wantSuccess)
	}
	if err := f1.ex.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	unfinished := []string{holder.ID, retry.ID, waiting.ID, "legacy"}
	slices.Sort(unfinished)
	if got, chunks := snapshotIDs(t, qc); !slices.Equal(got, unfinished) || chunks < 2 {
		t.Fatalf("snapshot lists %v in %d chunks, want the unfinished %v in 2 or more", got, chunks, unfinished)
	}

	// 2. The restart reads the unfinished records only.
	f2 := startOn(t, qc, Config{ZombieThreshold: 300 * time.Millisecond})
	if d := f2.ex.store.decoded.Load(); d != int64(len(unfinished)) {
		t.Fatalf("restart decoded %d records, want the %d unfinished only", d, len(unfinished))
	}
	if n := total(t, f2.ex, activity.StateSuccess); n != wantSuccess {
		t.Fatalf("success total after the restart %d, want %d", n, wantSuccess)
	}
	got := f2.eventually("the holder retried as a zombie", func(ti *activity.TaskInstance) bool { return ti.TryNumber == 2 }, holder.ID)
	if !strings.Contains(got.Tries[0].Reason, "zombie") {
		t.Errorf("holder's try 1 reason %q, want zombie", got.Tries[0].Reason)
	}
	f2.eventually("the retry queued", func(ti *activity.TaskInstance) bool {
		return ti.TryNumber == 2 && ti.State == activity.StateQueued
	}, retry.ID)
	if p, err := f2.ex.List(t.Context(), Filter{States: []activity.State{activity.StateQueued}, Queue: "legacy"}); err != nil ||
		p.Total != 1 || len(p.TIs) != 1 || p.TIs[0].ID != "legacy" {
		t.Fatalf("the queued record from the first start is not listed as queued: %+v, %v", p, err)
	}
	// The pool's slot went to one of the two, the other waits.
	f2.waitPool("p", func(p activity.Pool) bool { return p.Occupied == 1 && p.Waiting == 1 })
	a := f2.tryTake("pooled", 5*time.Second)
	if a == nil || (a.TI.ID != holder.ID && a.TI.ID != waiting.ID) {
		t.Fatalf("no pooled task admitted after the restart: %+v", a)
	}
	f2.end(a.TI.ID, f2.start(a))
	f2.waitPool("p", func(p activity.Pool) bool { return p.Occupied == 1 && p.Waiting == 0 })
	if err := f2.ex.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}

	// 3. Another writer since the snapshot: every record is read again.
	putRecord(t, qc, "late", "done", activity.StateSuccess, time.Now().UTC())
	f3 := startOn(t, qc, Config{ZombieThreshold: time.Hour})
	if d := f3.ex.store.decoded.Load(); d < int64(wantSuccess) {
		t.Fatalf("start after a foreign write decoded %d records, want every one (%d+)", d, wantSuccess)
	}
	if n := total(t, f3.ex, activity.StateSuccess); n != wantSuccess+2 {
		t.Fatalf("success total %d, want %d", n, wantSuccess+2)
	}
}
