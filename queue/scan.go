package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// scanMaxBytes bounds what a Scan holds of the stream at a time.
const scanMaxBytes = 1 << 20

// StoredValue is one value of a bucket as stored in its stream, read by
// [Bucket.Scan]: its key, value and revision (the stream sequence). It may
// be an older revision of its key: [Bucket.Latest] tells.
type StoredValue struct {
	Key      string
	Value    []byte
	Revision uint64
}

// Bounds returns the first and last revisions (stream sequences) stored in
// the bucket; last is 0 when it was never written.
func (b Bucket) Bounds(ctx context.Context) (first, last uint64, err error) {
	st, err := b.js.Stream(ctx, "KV_"+b.Name())
	if err != nil {
		return 0, 0, fmt.Errorf("bounds of %s: %w", b.Name(), err)
	}
	si, err := st.Info(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("bounds of %s: %w", b.Name(), err)
	}
	return si.State.FirstSeq, si.State.LastSeq, nil
}

// Scan calls fn with each value stored in the bucket's stream at a
// revision in [from, to), in ascending order, skipping deletions, until fn
// returns false or the range is read. It holds about a megabyte of the
// stream at a time, so it reads buckets larger than memory; fn must not
// keep Value after it returns. A bucket keeping history has older
// revisions of a key in its stream too: [Bucket.Latest] tells whether a
// value is current.
func (b Bucket) Scan(ctx context.Context, from, to uint64, fn func(StoredValue) bool) error {
	if from == 0 {
		from = 1
	}
	if to != 0 && to <= from {
		return nil
	}
	prefix := "$KV." + b.Name() + "."
	cons, err := b.js.OrderedConsumer(ctx, "KV_"+b.Name(), jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{prefix + ">"},
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       from,
		InactiveThreshold: logReaderInactiveThreshold,
	})
	if err != nil {
		return fmt.Errorf("scan %s: %w", b.Name(), err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("scan %s: %w", b.Name(), err)
	}
	if info.NumPending == 0 {
		return nil
	}
	it, err := cons.Messages(jetstream.PullMaxBytes(scanMaxBytes))
	if err != nil {
		return fmt.Errorf("scan %s: %w", b.Name(), err)
	}
	defer it.Stop()
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return fmt.Errorf("scan %s: %w", b.Name(), err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("scan %s: %w", b.Name(), err)
		}
		seq := meta.Sequence.Stream
		if to != 0 && seq >= to {
			return nil
		}
		if op := msg.Headers().Get("KV-Operation"); op == "" {
			if !fn(StoredValue{Key: strings.TrimPrefix(msg.Subject(), prefix), Value: msg.Data(), Revision: seq}) {
				return nil
			}
		}
		if meta.NumPending == 0 || (to != 0 && seq+1 >= to) {
			return nil
		}
	}
}

// Latest reports whether rev is key's current revision (false when key
// was written since, or deleted).
func (b Bucket) Latest(ctx context.Context, key string, rev uint64) (bool, error) {
	e, err := b.kv.Get(ctx, key)
	if errors.Is(err, ErrKeyNotFound) || errors.Is(err, ErrKeyDeleted) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("latest %s: %w", key, err)
	}
	return e.Revision() == rev, nil
}

// Previous returns the value key had just before revision rev (the put
// with the highest revision below rev kept in the bucket's history); ok is
// false when there is none (rev created the key, or the history is gone).
func (b Bucket) Previous(ctx context.Context, key string, rev uint64) (val []byte, ok bool, err error) {
	hist, err := b.kv.History(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("history of %s: %w", key, err)
	}
	var best jetstream.KeyValueEntry
	for _, e := range hist {
		if e.Revision() < rev && (best == nil || e.Revision() > best.Revision()) {
			best = e
		}
	}
	if best == nil || best.Operation() != jetstream.KeyValuePut {
		return nil, false, nil
	}
	return best.Value(), true, nil
}

// PutMany writes n values (kv(i) returns the i-th key and value) without
// waiting for each acknowledgement before the next, at most window
// awaiting theirs at once: a restore, a backfill, a benchmark. It returns
// once every one is acknowledged, or at the first error.
func (b Bucket) PutMany(ctx context.Context, n, window int, kv func(i int) (key string, val []byte)) error {
	pending := make(chan jetstream.PubAckFuture, max(window, 1))
	wait := func(f jetstream.PubAckFuture) error {
		select {
		case <-f.Ok():
			return nil
		case err := <-f.Err():
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	prefix := "$KV." + b.Name() + "."
	for i := range n {
		key, val := kv(i)
		if len(pending) == cap(pending) {
			if err := wait(<-pending); err != nil {
				return fmt.Errorf("put many in %s: %w", b.Name(), err)
			}
		}
		f, err := b.js.PublishAsync(prefix+key, val)
		if err != nil {
			return fmt.Errorf("put many in %s: %w", b.Name(), err)
		}
		pending <- f
	}
	close(pending)
	for f := range pending {
		if err := wait(f); err != nil {
			return fmt.Errorf("put many in %s: %w", b.Name(), err)
		}
	}
	return nil
}
