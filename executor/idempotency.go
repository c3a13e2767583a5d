package executor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/queue"
)

// IdempotencyKeyMax bounds an Idempotency-Key header.
const IdempotencyKeyMax = 255

// idempotencyWait bounds how long a repeated submit waits for the task
// instance of a first one still being recorded.
const idempotencyWait = 10 * time.Second

// idempotencyRecord is what the idempotency_keys bucket holds under a
// key's hash: the task instance the key made and the hash of its spec.
type idempotencyRecord struct {
	TIID string `json:"ti_id"`
	Spec string `json:"spec"`
}

// checkIdempotencyKey checks an Idempotency-Key: 1-255 printable ASCII.
func checkIdempotencyKey(key string) error {
	if key == "" || len(key) > IdempotencyKeyMax {
		return badRequest("Idempotency-Key must be 1-%d characters", IdempotencyKeyMax)
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return badRequest("Idempotency-Key must be printable ASCII")
		}
	}
	return nil
}

// SubmitIdempotent is Submit under an idempotency key: the first submit
// with key queues the task instance (created true); a later one with the
// same spec returns that instance (created false), with another spec
// ErrConflict. Keys are remembered for queue.IdempotencyKeyTTL, across
// executor replicas (a create-if-absent in KV decides which submit is
// first).
func (e *Executor) SubmitIdempotent(ctx context.Context, key string, spec activity.TaskSpec) (ti *activity.TaskInstance, created bool, err error) {
	if err := checkIdempotencyKey(key); err != nil {
		return nil, false, err
	}
	raw, err := json.Marshal(spec)
	if err != nil {
		return nil, false, badRequest("task spec: %v", err)
	}
	sum := sha256.Sum256(raw)
	fp := hex.EncodeToString(sum[:])
	kh := sha256.Sum256([]byte(key))
	kvKey := hex.EncodeToString(kh[:])
	id, err := uuid.NewV7()
	if err != nil {
		return nil, false, fmt.Errorf("submit: new id: %w", err)
	}
	rec, _ := json.Marshal(idempotencyRecord{TIID: id.String(), Spec: fp})
	kv := e.q.Bucket(queue.BucketIdempotency)
	rev, err := kv.Create(ctx, kvKey, rec)
	if err == nil {
		ti, err := e.submit(ctx, spec, id.String(), key)
		if err != nil {
			// Nothing was queued: the key is free again.
			if derr := kv.DeleteAt(context.WithoutCancel(ctx), kvKey, rev); derr != nil {
				e.log.Warn("free idempotency key of a failed submit", "err", derr)
			}
			return nil, false, err
		}
		return ti, true, nil
	}
	if !queue.IsConflict(err) {
		return nil, false, fmt.Errorf("record idempotency key: %w", err)
	}
	ent, err := kv.Get(ctx, kvKey)
	if err != nil {
		return nil, false, fmt.Errorf("read idempotency key: %w", err)
	}
	var prev idempotencyRecord
	if err := json.Unmarshal(ent.Value(), &prev); err != nil {
		return nil, false, fmt.Errorf("decode idempotency key: %w", err)
	}
	if prev.Spec != fp {
		return nil, false, fmt.Errorf("%w: Idempotency-Key %q was used for a different task spec (task instance %s): use a new key for a new task", ErrConflict, activity.CutValue(key), prev.TIID)
	}
	// The first submit may still be recording its task instance.
	wctx, cancel := context.WithTimeout(ctx, idempotencyWait)
	defer cancel()
	for {
		ti, err := e.store.get(wctx, prev.TIID)
		if err == nil {
			return ti, false, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return nil, false, err
		}
		select {
		case <-wctx.Done():
			return nil, false, fmt.Errorf("%w: the submit with Idempotency-Key %q is still under way or failed; try again", ErrConflict, activity.CutValue(key))
		case <-time.After(20 * time.Millisecond):
		}
	}
}
