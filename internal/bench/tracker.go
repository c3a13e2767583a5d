package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/queue"
)

// errTrackerStopped is returned by wait once the watch has ended.
var errTrackerStopped = errors.New("task instance watch ended")

// tracker watches the task_instances bucket and hands each task instance's
// terminal record to whoever waits for it: a push where client.Wait polls
// (every 100ms), so that waiting adds neither load nor delay to what is
// measured.
type tracker struct {
	ended atomic.Int64 // terminal records seen
	// started counts the task instances whose running record came (the
	// executor's answer to …/run, just before the worker hands the try to
	// its process); peak is the most running at once (started − ended),
	// since resetPeak.
	started atomic.Int64
	peak    atomic.Int64

	mu      sync.Mutex
	seen    map[string]bool                   // ids whose terminal record came
	running map[string]bool                   // ids whose running record came
	records map[string]*activity.TaskInstance // terminal, not yet waited for
	waiting map[string]chan *activity.TaskInstance

	cancel context.CancelFunc
	done   chan struct{} // closed when the watch goroutine returns
}

// startTracker watches kv until stop; it returns once the watch has
// delivered the bucket's current records.
func startTracker(ctx context.Context, kv queue.Bucket) (*tracker, error) {
	wctx, cancel := context.WithCancel(context.Background())
	w, err := kv.WatchAll(wctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("watch task instances: %w", err)
	}
	t := &tracker{
		seen:    map[string]bool{},
		running: map[string]bool{},
		records: map[string]*activity.TaskInstance{},
		waiting: map[string]chan *activity.TaskInstance{},
		cancel:  cancel,
		done:    make(chan struct{}),
	}
	ready := make(chan struct{})
	go func() {
		defer close(t.done)
		defer func() { _ = w.Stop() }()
		loaded := false
		for {
			select {
			case <-wctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e.CaughtUp() {
					if !loaded {
						loaded = true
						close(ready)
					}
					continue
				}
				if !e.IsPut() {
					continue
				}
				// Two of a task's three writes are not terminal: read the
				// state alone first (the bench's own CPU counts in the
				// cluster's per task).
				st, ok := recordState(e.Value())
				if !ok {
					continue
				}
				if st == activity.StateRunning {
					t.run(e.Key())
					continue
				}
				if !st.Terminal() {
					continue
				}
				if ti, err := endedRecord(e.Value()); err == nil && ti.State.Terminal() {
					t.record(ti)
				}
			}
		}
	}()
	select {
	case <-ready:
		return t, nil
	case <-t.done:
		t.stop()
		return nil, fmt.Errorf("watch task instances: %w", errTrackerStopped)
	case <-ctx.Done():
		t.stop()
		return nil, ctx.Err()
	}
}

// stateKey is how a task-instance record's state begins.
var stateKey = []byte(`"state":"`)

// recordState reads the state of a task-instance record without decoding
// it: its first "state" key is the record's own (activity.TaskInstance
// has only plain keys and strings before it, and a quote inside a string
// is escaped, so no string holds the key); a record without it is decoded.
func recordState(b []byte) (activity.State, bool) {
	if i := bytes.Index(b, stateKey); i >= 0 {
		rest := b[i+len(stateKey):]
		if j := bytes.IndexByte(rest, '"'); j >= 0 {
			return activity.State(rest[:j]), true
		}
	}
	var st struct {
		State activity.State `json:"state"`
	}
	if json.Unmarshal(b, &st) != nil {
		return "", false
	}
	return st.State, true
}

// endedRecord decodes the fields of a terminal record that the bench reads
// (id, state, reason, try, dates, worker): json skips the others (their
// maps and nested structs) without allocating them.
func endedRecord(b []byte) (*activity.TaskInstance, error) {
	var r struct {
		ID        string         `json:"id"`
		State     activity.State `json:"state"`
		TryNumber int            `json:"try_number"`
		Reason    string         `json:"reason"`
		WorkerID  string         `json:"worker_id"`
		QueuedAt  *time.Time     `json:"queued_at"`
		StartDate *time.Time     `json:"start_date"`
		EndDate   *time.Time     `json:"end_date"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode task instance: %w", err)
	}
	return &activity.TaskInstance{ID: r.ID, State: r.State, TryNumber: r.TryNumber, Reason: r.Reason, WorkerID: r.WorkerID,
		QueuedAt: r.QueuedAt, StartDate: r.StartDate, EndDate: r.EndDate}, nil
}

// run counts task instance id's first running record.
func (t *tracker) run(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.running[id] || t.seen[id] {
		return
	}
	t.running[id] = true
	n := t.started.Add(1) - t.ended.Load()
	if n > t.peak.Load() {
		t.peak.Store(n)
	}
}

// resetPeak starts a new count of the most running at once.
func (t *tracker) resetPeak() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.peak.Store(t.started.Load() - t.ended.Load())
}

func (t *tracker) record(ti *activity.TaskInstance) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.seen[ti.ID] {
		return // a later write to an ended record
	}
	t.seen[ti.ID] = true
	if !t.running[ti.ID] {
		t.started.Add(1) // its running record was missed (overwritten at once)
	}
	delete(t.running, ti.ID)
	if ch, ok := t.waiting[ti.ID]; ok {
		delete(t.waiting, ti.ID)
		ch <- ti
	} else {
		t.records[ti.ID] = ti
	}
	t.ended.Add(1)
}

// wait returns task instance id's terminal record.
func (t *tracker) wait(ctx context.Context, id string) (*activity.TaskInstance, error) {
	t.mu.Lock()
	if ti, ok := t.records[id]; ok {
		delete(t.records, id)
		t.mu.Unlock()
		return ti, nil
	}
	ch := make(chan *activity.TaskInstance, 1)
	t.waiting[id] = ch
	t.mu.Unlock()
	select {
	case ti := <-ch:
		return ti, nil
	case <-t.done:
		return nil, fmt.Errorf("wait for task instance %s: %w", id, errTrackerStopped)
	case <-ctx.Done():
		t.mu.Lock()
		delete(t.waiting, id)
		t.mu.Unlock()
		return nil, fmt.Errorf("wait for task instance %s: %w", id, ctx.Err())
	}
}

// succeeded waits for task instance id and checks that it succeeded.
func (t *tracker) succeeded(ctx context.Context, id string) (*activity.TaskInstance, error) {
	ti, err := t.wait(ctx, id)
	if err != nil {
		return nil, err
	}
	if ti.State != activity.StateSuccess {
		return nil, &TaskError{ID: id, State: ti.State, Reason: ti.Reason}
	}
	return ti, nil
}

// stop ends the watch and waits for its goroutine.
func (t *tracker) stop() {
	t.cancel()
	<-t.done
}

// TaskError is a task instance that did not succeed.
type TaskError struct {
	ID     string
	State  activity.State
	Reason string
}

func (e *TaskError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("task instance %s ended %s", e.ID, e.State)
	}
	return fmt.Sprintf("task instance %s ended %s: %s", e.ID, e.State, e.Reason)
}
