package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// PurgeKeyAt removes key and its history from kv if its latest revision is
// still rev (ErrConflict-like JetStream error otherwise: it was written
// meanwhile, and stays).
func PurgeKeyAt(ctx context.Context, kv jetstream.KeyValue, key string, rev uint64) error {
	if err := kv.Purge(ctx, key, jetstream.LastRevision(rev)); err != nil {
		return fmt.Errorf("purge %s at revision %d: %w", key, rev, err)
	}
	return nil
}

// PurgeMarkers removes the delete markers kv keeps of keys purged more than
// olderThan ago, so that deleted records cost nothing.
func PurgeMarkers(ctx context.Context, kv jetstream.KeyValue, olderThan time.Duration) error {
	if err := kv.PurgeDeletes(ctx, jetstream.DeleteMarkersOlderThan(olderThan)); err != nil {
		return fmt.Errorf("purge delete markers: %w", err)
	}
	return nil
}
