package queue

import (
	"context"
	"errors"
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

// RemoveAt removes key if its current revision is still rev (no error
// otherwise: it was written again, and stays), leaving a delete marker
// that the server drops after a second: for a bucket made with marker
// TTLs, of one revision per key, whose keys come and go ([BucketOpenTaskInstances],
// an index), so that its stream holds the current keys and not one marker
// per key ever removed.
func (b Bucket) RemoveAt(ctx context.Context, key string, rev uint64) error {
	err := b.kv.Purge(ctx, key, jetstream.LastRevision(rev), jetstream.PurgeTTL(removedMarkerTTL))
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove %s at revision %d: %w", key, rev, err)
	}
	return nil
}

// removedMarkerTTL is how long RemoveAt's delete marker stays.
const removedMarkerTTL = time.Second
