package queue

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// Buckets of the scheduler side (DAGs and their runs). They are
// provisioned on first use by [Client.DagStore], not by [New].
const (
	// BucketDags holds each DAG's current record under [DagKey] and every
	// version of its document under [DagVersionKey].
	BucketDags = "dags"
	// BucketDagRuns holds each DAG run's record under [DagRunKey], a
	// marker under [ActiveRunKey] while the run has not ended, and each
	// DAG's max_active_runs slots under [DagSlotsKey].
	BucketDagRuns = "dag_runs"
)

// ErrRecordNotFound is returned for a record that does not exist.
var ErrRecordNotFound = errors.New("queue: record not found")

// DagKey is the dags-bucket key of a DAG's current record. dagID must be
// a valid key token ([A-Za-z0-9_-]).
func DagKey(dagID string) string { return "dag." + dagID }

// DagVersionKey is the dags-bucket key of version v of a DAG's document.
func DagVersionKey(dagID string, v int) string { return fmt.Sprintf("ver.%s.%d", dagID, v) }

// DagRunKey is the dag_runs-bucket key of a run: its run_id is encoded
// (base64url) since run ids hold characters keys may not.
func DagRunKey(dagID, runID string) string {
	return "run." + dagID + "." + base64.RawURLEncoding.EncodeToString([]byte(runID))
}

// ActiveRunKey is the key of the marker of a run that has not ended.
func ActiveRunKey(dagID, runID string) string {
	return "active." + dagID + "." + base64.RawURLEncoding.EncodeToString([]byte(runID))
}

// DagSlotsKey is the dag_runs-bucket key of the record of the runs of a
// DAG that hold its max_active_runs slots.
func DagSlotsKey(dagID string) string { return "slots." + dagID }

// DagStore keeps DAGs and DAG runs as records in KV, each changed by
// compare-and-set.
type DagStore struct {
	dags *Records
	runs *Records
}

// Dags are the DAG records.
func (s *DagStore) Dags() *Records { return s.dags }

// Runs are the run records.
func (s *DagStore) Runs() *Records { return s.runs }

var dagStoreMu sync.Mutex

// DagStore provisions (or, for a bound client, binds) the scheduler-side
// buckets and returns their store.
func (c *Client) DagStore(ctx context.Context) (*DagStore, error) {
	dagStoreMu.Lock()
	defer dagStoreMu.Unlock()
	dags, err := c.records(ctx, jetstream.KeyValueConfig{Bucket: BucketDags, Description: "taskwire DAGs and their versions"})
	if err != nil {
		return nil, err
	}
	runs, err := c.records(ctx, jetstream.KeyValueConfig{Bucket: BucketDagRuns, Description: "taskwire DAG runs"})
	if err != nil {
		return nil, err
	}
	return &DagStore{dags: dags, runs: runs}, nil
}

func (c *Client) records(ctx context.Context, kc jetstream.KeyValueConfig) (*Records, error) {
	kc.Replicas, kc.Storage = c.cfg.Replicas, c.cfg.Storage
	var (
		kv  jetstream.KeyValue
		err error
	)
	if c.cfg.Bind {
		kv, err = c.js.KeyValue(ctx, kc.Bucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			kv, err = c.js.CreateKeyValue(ctx, kc)
			if errors.Is(err, jetstream.ErrBucketExists) {
				kv, err = c.js.KeyValue(ctx, kc.Bucket)
			}
		}
	} else {
		kv, err = c.js.CreateOrUpdateKeyValue(ctx, kc)
	}
	if err != nil {
		return nil, fmt.Errorf("provision kv bucket %s: %w", kc.Bucket, err)
	}
	return &Records{kv: kv}, nil
}

// Records is a KV bucket of records changed by compare-and-set.
type Records struct {
	kv jetstream.KeyValue
}

// Get returns a record and its revision, or an error wrapping
// [ErrRecordNotFound].
func (r *Records) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	e, err := r.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return nil, 0, fmt.Errorf("%s: %w", key, ErrRecordNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("get %s: %w", key, err)
	}
	return e.Value(), e.Revision(), nil
}

// Create stores a new record; a record that exists gives an error for
// which [IsConflict] is true.
func (r *Records) Create(ctx context.Context, key string, val []byte) (uint64, error) {
	rev, err := r.kv.Create(ctx, key, val)
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", key, err)
	}
	return rev, nil
}

// Update writes a record if it is still at revision rev; otherwise the
// error satisfies [IsConflict].
func (r *Records) Update(ctx context.Context, key string, val []byte, rev uint64) (uint64, error) {
	n, err := r.kv.Update(ctx, key, val, rev)
	if err != nil {
		return 0, fmt.Errorf("update %s at revision %d: %w", key, rev, err)
	}
	return n, nil
}

// Put writes a record whatever its revision.
func (r *Records) Put(ctx context.Context, key string, val []byte) error {
	if _, err := r.kv.Put(ctx, key, val); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// Mutate is [UpdateCAS] on the bucket: mutate gets the current value (nil
// when absent) and returns the new one; conflicts are retried.
func (r *Records) Mutate(ctx context.Context, key string, mutate func(old []byte) ([]byte, error)) (uint64, error) {
	return UpdateCAS(ctx, Bucket{kv: r.kv}, key, mutate)
}

// Delete removes a record (and its history with purge); a missing record
// is no error.
func (r *Records) Delete(ctx context.Context, key string, purge bool) error {
	var err error
	if purge {
		err = r.kv.Purge(ctx, key)
	} else {
		err = r.kv.Delete(ctx, key)
	}
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// Keys lists the keys matching a subject-style filter ("run.etl.*").
func (r *Records) Keys(ctx context.Context, filter string) ([]string, error) {
	kl, err := r.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("list keys %s: %w", filter, err)
	}
	defer func() { _ = kl.Stop() }()
	var out []string
	for k := range kl.Keys() {
		out = append(out, k)
	}
	return out, nil
}

// Watch calls fn with every new value of key (nil once it is deleted)
// after its current one, until ctx is done or fn returns false.
func (r *Records) Watch(ctx context.Context, key string, fn func(val []byte, rev uint64) bool) error {
	w, err := r.kv.Watch(ctx, key)
	if err != nil {
		return fmt.Errorf("watch %s: %w", key, err)
	}
	defer func() { _ = stopWatch(w) }()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return nil
			}
			if e == nil {
				continue
			}
			var v []byte
			if e.Operation() == jetstream.KeyValuePut {
				v = e.Value()
			}
			if !fn(v, e.Revision()) {
				return nil
			}
		}
	}
}

// ParseRunKey splits a dag_runs-bucket key (of a run or of its active
// marker) into its dag_id and run_id.
func ParseRunKey(key string) (dagID, runID string, ok bool) {
	parts := strings.Split(key, ".")
	if len(parts) != 3 || parts[0] != "run" && parts[0] != "active" {
		return "", "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return "", "", false
	}
	return parts[1], string(b), true
}
