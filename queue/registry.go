package queue

import (
	"context"
	"errors"
	"fmt"

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
// It is complete while the entries are rewritten: a watch's "initial
// values done" marker (nats.go's KeyValue.WatchAll, ListKeys) comes once
// it has received as many entries as were pending at its start, but an
// entry rewritten meanwhile is delivered at its new revision, after
// entries that may be the same keys' newer revisions; so with a thousand
// workers heartbeating, lists came back a few short. Snapshot reads
// until it has reached the bucket's last revision as it was when it
// started, or an entry with nothing pending after it, so every key
// existing at its start is in.
func (c *Client) Snapshot(ctx context.Context, bucket string) (map[string][]byte, error) {
	kv := c.KV(bucket)
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", bucket, err)
	}
	var last uint64
	if bs, ok := st.(*jetstream.KeyValueBucketStatus); ok {
		last = bs.StreamInfo().State.LastSeq
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", bucket, err)
	}
	defer func() { _ = w.Stop() }()
	out := map[string][]byte{}
	got := 0
	for {
		select {
		case ent, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("read %s: watch ended", bucket)
			}
			if ent == nil {
				if got == 0 {
					return out, nil // nothing was pending at the start
				}
				continue
			}
			got++
			if ent.Operation() == jetstream.KeyValuePut {
				out[ent.Key()] = ent.Value()
			} else {
				delete(out, ent.Key())
			}
			if ent.Revision() >= last || ent.Delta() == 0 {
				return out, nil
			}
		case <-ctx.Done():
			return nil, fmt.Errorf("read %s: %w", bucket, ctx.Err())
		}
	}
}
