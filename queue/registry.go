package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// DrainRequested reports whether an operator asked worker id to drain (its
// drain key is in the workers bucket). A worker asks on every registry
// heartbeat: one direct get, where a watch per worker would be a consumer
// per worker on the bucket's stream (1,000 workers were the server's
// limit of consumers per stream).
func (c *Client) DrainRequested(ctx context.Context, id string) (bool, error) {
	_, err := c.KV(BucketWorkers).Get(ctx, DrainKey(id))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return false, nil
	}
	return false, fmt.Errorf("read drain request of worker %s: %w", id, err)
}

// Snapshot returns every live entry of bucket by key, with the value
// each had when it was read.
//
// It is complete while the entries are rewritten. A watch (nats.go's
// KeyValue.WatchAll, ListKeys) says "initial values done" when it has
// received as many entries as were pending at its start, or when the
// server counts none pending; with a thousand workers rewriting their
// entries both came while keys being rewritten were still to come, and
// lists came back a few short (998, 997 of 999; the test below catches
// 296 of 300). So Snapshot first asks the stream which keys exist (one
// request; the server answers from its index under one lock), then reads
// the watch until each of them has come (as a value or a deletion); one
// still missing when the watch is caught up (or has read twice as many
// entries as there are keys) is read alone.
func (c *Client) Snapshot(ctx context.Context, bucket string) (map[string][]byte, error) {
	kv := c.KV(bucket)
	prefix := "$KV." + bucket + "."
	info, err := c.js.Stream(ctx, "KV_"+bucket)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", bucket, err)
	}
	si, err := info.Info(ctx, jetstream.WithSubjectFilter(prefix+">"))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", bucket, err)
	}
	want := make(map[string]bool, len(si.State.Subjects))
	for subj := range si.State.Subjects {
		want[strings.TrimPrefix(subj, prefix)] = true
	}
	out := make(map[string][]byte, len(want))
	if len(want) == 0 {
		return out, nil
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", bucket, err)
	}
	defer func() { _ = w.Stop() }()
	// Read on until caught up, or for twice the keys' number of entries
	// (rewrites arrive faster than the watch reads them): what is still
	// missing then is read alone.
	caughtUp, budget := false, 2*len(want)+100
	for len(want) > 0 && !caughtUp && budget > 0 {
		budget--
		select {
		case ent, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("read %s: watch ended", bucket)
			}
			if ent == nil {
				continue
			}
			delete(want, ent.Key())
			if ent.Operation() == jetstream.KeyValuePut {
				out[ent.Key()] = ent.Value()
			} else {
				delete(out, ent.Key())
			}
			caughtUp = ent.Delta() == 0
		case <-ctx.Done():
			return nil, fmt.Errorf("read %s: %w", bucket, ctx.Err())
		}
	}
	for key := range want {
		ent, err := kv.Get(ctx, key)
		switch {
		case err == nil:
			out[key] = ent.Value()
		case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		default:
			return nil, fmt.Errorf("read %s key %s: %w", bucket, key, err)
		}
	}
	return out, nil
}
