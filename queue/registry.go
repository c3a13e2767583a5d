package queue

import (
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
