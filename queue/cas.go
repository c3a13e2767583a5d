package queue

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// casAttemptsMax is how many times UpdateCAS tries before giving up.
const casAttemptsMax = 20

// ErrCASConflict is returned by [UpdateCAS] when every attempt lost to a
// concurrent writer.
var ErrCASConflict = errors.New("queue: compare-and-set conflict")

// UpdateCAS reads key, calls mutate with its value (nil when absent or
// deleted) and writes the result only if key was not written meanwhile:
// Create when it was absent, Update at the read revision otherwise.
// On a conflict it reads again and retries, up to 20 attempts, then fails
// with an error wrapping [ErrCASConflict]. An error from mutate aborts
// UpdateCAS and is returned as is. It returns the revision written.
//
// mutate may be called several times and must not keep old.
func UpdateCAS(ctx context.Context, kv Bucket, key string, mutate func(old []byte) ([]byte, error)) (uint64, error) {
	for attempt := 1; ; attempt++ {
		var (
			old []byte
			rev uint64
		)
		entry, err := kv.Get(ctx, key)
		switch {
		case errors.Is(err, ErrKeyNotFound):
		case err != nil:
			return 0, fmt.Errorf("update cas %s: get: %w", key, err)
		default:
			old, rev = entry.Value(), entry.Revision()
		}
		val, err := mutate(old)
		if err != nil {
			return 0, err
		}
		var newRev uint64
		if rev == 0 {
			newRev, err = kv.Create(ctx, key, val)
		} else {
			newRev, err = kv.Update(ctx, key, val, rev)
		}
		if err == nil {
			return newRev, nil
		}
		if !isCASConflict(err) {
			return 0, fmt.Errorf("update cas %s at revision %d: %w", key, rev, err)
		}
		if attempt == casAttemptsMax {
			return 0, fmt.Errorf("update cas %s: %d attempts: %w (%w)", key, attempt, ErrCASConflict, err)
		}
		// A short random pause spreads out writers that collided.
		t := time.NewTimer(time.Duration(rand.Int64N(int64(attempt) * int64(time.Millisecond))))
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, fmt.Errorf("update cas %s: %w", key, ctx.Err())
		case <-t.C:
		}
	}
}

// IsConflict reports whether err is a KV write refused because the key
// was written meanwhile (kv.Create of an existing key, kv.Update at a
// stale revision).
func IsConflict(err error) bool { return isCASConflict(err) }

func isCASConflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
