package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// PurgeAt removes key and its history if its latest revision is still rev
// (an error otherwise: it was written meanwhile, and stays).
func (b Bucket) PurgeAt(ctx context.Context, key string, rev uint64) error {
	if err := b.kv.Purge(ctx, key, jetstream.LastRevision(rev)); err != nil {
		return fmt.Errorf("purge %s at revision %d: %w", key, rev, err)
	}
	return nil
}

// PurgeMarkers removes the delete markers of keys purged more than
// olderThan ago, so that deleted records cost nothing.
func (b Bucket) PurgeMarkers(ctx context.Context, olderThan time.Duration) error {
	if err := b.kv.PurgeDeletes(ctx, jetstream.DeleteMarkersOlderThan(olderThan)); err != nil {
		return fmt.Errorf("purge delete markers: %w", err)
	}
	return nil
}
