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

// PurgePrefix removes every key under prefix (the keys prefix.*, at any
// depth) with their history, in one request to the server: a purge of the
// bucket's stream filtered by subject, which leaves no delete markers, so
// watchers of the bucket do not see it.
func (b Bucket) PurgePrefix(ctx context.Context, prefix string) error {
	if prefix == "" {
		return fmt.Errorf("purge prefix: %w", ErrInvalidKey)
	}
	name := b.kv.Bucket()
	s, err := b.js.Stream(ctx, "KV_"+name)
	if err != nil {
		return fmt.Errorf("purge %s.>: %w", prefix, err)
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSubject("$KV."+name+"."+prefix+".>")); err != nil {
		return fmt.Errorf("purge %s.>: %w", prefix, err)
	}
	return nil
}
