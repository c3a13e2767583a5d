package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// WorkerRegistryTTL is how long a worker's registry entry outlives its
// last heartbeat: a worker that died is listed as lost that long.
const WorkerRegistryTTL = time.Hour

// Key prefixes of the workers bucket.
const (
	workerKeyPrefix = "worker."
	drainKeyPrefix  = "drain."
)

// WorkerKey is the workers-bucket key of worker id's entry.
func WorkerKey(id string) string { return workerKeyPrefix + id }

// DrainKey is the workers-bucket key of a drain request for worker id.
func DrainKey(id string) string { return drainKeyPrefix + id }

// ParseWorkerKey splits a workers-bucket key into the worker id and
// whether it is a drain request; ok is false for any other key.
func ParseWorkerKey(key string) (id string, drain, ok bool) {
	if id, ok := strings.CutPrefix(key, workerKeyPrefix); ok && id != "" {
		return id, false, true
	}
	if id, ok := strings.CutPrefix(key, drainKeyPrefix); ok && id != "" {
		return id, true, true
	}
	return "", false, false
}

// DrainRequested reports whether an operator asked worker id to drain (its
// drain key is in the workers bucket). A worker asks on every registry
// heartbeat: one direct get, where a watch per worker would be a consumer
// per worker on the bucket's stream (1,000 workers were the server's
// limit of consumers per stream).
func (c *Client) DrainRequested(ctx context.Context, id string) (bool, error) {
	_, err := c.Bucket(BucketWorkers).Get(ctx, DrainKey(id))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrKeyNotFound), errors.Is(err, ErrKeyDeleted):
		return false, nil
	}
	return false, fmt.Errorf("read drain request of worker %s: %w", id, err)
}
