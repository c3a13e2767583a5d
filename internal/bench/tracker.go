package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

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

	mu      sync.Mutex
	seen    map[string]bool                   // ids whose terminal record came
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
				var st struct {
					State activity.State `json:"state"`
				}
				if json.Unmarshal(e.Value(), &st) != nil || !st.State.Terminal() {
					continue
				}
				if ti, err := activity.UnmarshalRecord(e.Value()); err == nil && ti.State.Terminal() {
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

func (t *tracker) record(ti *activity.TaskInstance) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.seen[ti.ID] {
		return // a later write to an ended record
	}
	t.seen[ti.ID] = true
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
