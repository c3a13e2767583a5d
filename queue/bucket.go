package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Errors of key-value operations, matched with errors.Is. They are
// JetStream's own sentinels under taskwire's names, so an error that came
// through nats.go matches without a translation on the hot path.
var (
	// ErrKeyNotFound: the key has no value (never written, or deleted).
	ErrKeyNotFound = jetstream.ErrKeyNotFound
	// ErrKeyDeleted: the key's last operation was a delete.
	ErrKeyDeleted = jetstream.ErrKeyDeleted
	// ErrKeyExists: Create of a key that has a value.
	ErrKeyExists = jetstream.ErrKeyExists
	// ErrInvalidKey: the key is not a valid key (empty, or not a valid
	// NATS subject token sequence).
	ErrInvalidKey = jetstream.ErrInvalidKey
)

// Bucket is one of taskwire's key-value buckets (records, xcom, variables,
// connections, config, trigger claims, heartbeats, the worker registry,
// external events), named by a Bucket constant and got with
// [Client.Bucket]. Every write returns the revision written; Update and
// DeleteAt are compare-and-set at a revision (see also [UpdateCAS]). The
// zero Bucket is not usable.
type Bucket struct {
	kv jetstream.KeyValue
	js jetstream.JetStream
}

// Name is the bucket's name.
func (b Bucket) Name() string { return b.kv.Bucket() }

// Get reads key's current value; [ErrKeyNotFound] when it has none.
func (b Bucket) Get(ctx context.Context, key string) (Entry, error) {
	e, err := b.kv.Get(ctx, key)
	if err != nil {
		return Entry{}, err
	}
	return Entry{e: e}, nil
}

// Put writes val under key whatever was there.
func (b Bucket) Put(ctx context.Context, key string, val []byte) (uint64, error) {
	return b.kv.Put(ctx, key, val)
}

// Create writes val under key only if key has no value; [ErrKeyExists]
// (see [IsConflict]) otherwise.
func (b Bucket) Create(ctx context.Context, key string, val []byte) (uint64, error) {
	return b.kv.Create(ctx, key, val)
}

// Update writes val under key only if key is still at revision rev; a
// conflict otherwise (see [IsConflict]).
func (b Bucket) Update(ctx context.Context, key string, val []byte, rev uint64) (uint64, error) {
	return b.kv.Update(ctx, key, val, rev)
}

// Delete deletes key's value (it writes a delete marker, which watches
// report). Callers that may delete a key without a value ignore
// [ErrKeyNotFound] with errors.Is.
func (b Bucket) Delete(ctx context.Context, key string) error {
	return b.kv.Delete(ctx, key)
}

// DeleteAt deletes key's value only if key is still at revision rev; a
// conflict otherwise (see [IsConflict]).
func (b Bucket) DeleteAt(ctx context.Context, key string, rev uint64) error {
	return b.kv.Delete(ctx, key, jetstream.LastRevision(rev))
}

// Keys returns the key of every live value.
func (b Bucket) Keys(ctx context.Context) ([]string, error) {
	l, err := b.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list keys of %s: %w", b.Name(), err)
	}
	defer func() { _ = l.Stop() }()
	var keys []string
	for k := range l.Keys() {
		keys = append(keys, k)
	}
	return keys, nil
}

// Entries returns every live value by key.
//
// It is complete while the entries are rewritten. A watch (nats.go's
// KeyValue.WatchAll, ListKeys) says "initial values done" when it has
// received as many entries as were pending at its start, or when the
// server counts none pending; with a thousand workers rewriting their
// entries both came while keys being rewritten were still to come, and
// lists came back a few short (998, 997 of 999;
// TestEntriesAreCompleteWhileRewritten catches 296 of 300). So Entries
// first asks the stream which keys exist (one request; the server answers
// from its index under one lock), then reads the watch until each of them
// has come (as a value or a deletion); one still missing when the watch is
// caught up (or has read twice as many entries as there are keys) is read
// alone.
func (b Bucket) Entries(ctx context.Context) (map[string][]byte, error) {
	prefix := "$KV." + b.Name() + "."
	st, err := b.js.Stream(ctx, "KV_"+b.Name())
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", b.Name(), err)
	}
	si, err := st.Info(ctx, jetstream.WithSubjectFilter(prefix+">"))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", b.Name(), err)
	}
	want := make(map[string]bool, len(si.State.Subjects))
	for subj := range si.State.Subjects {
		want[strings.TrimPrefix(subj, prefix)] = true
	}
	out := make(map[string][]byte, len(want))
	if len(want) == 0 {
		return out, nil
	}
	w, err := b.kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", b.Name(), err)
	}
	defer func() { _ = stopWatch(w) }()
	caughtUp, budget := false, 2*len(want)+100
	for len(want) > 0 && !caughtUp && budget > 0 {
		budget--
		select {
		case ent, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("read %s: watch ended", b.Name())
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
			return nil, fmt.Errorf("read %s: %w", b.Name(), ctx.Err())
		}
	}
	for key := range want {
		ent, err := b.kv.Get(ctx, key)
		switch {
		case err == nil:
			out[key] = ent.Value()
		case errors.Is(err, ErrKeyNotFound), errors.Is(err, ErrKeyDeleted):
		default:
			return nil, fmt.Errorf("read %s key %s: %w", b.Name(), key, err)
		}
	}
	return out, nil
}

// WatchOpts are options of [Bucket.Watch]. The zero value watches the
// current values, then every change.
type WatchOpts struct {
	// UpdatesOnly skips the current values: only changes from now on.
	UpdatesOnly bool
	// FromRevision, when set, reports every change stored from that
	// revision (stream sequence) on, in order, instead of the current
	// values; the marker comes once those stored when the watch started
	// are reported.
	FromRevision uint64
}

// Watch reports the current value of every key matching keys (a key, or
// a pattern with NATS wildcards, ">" for all), then a marker (an Entry
// whose CaughtUp is true; not sent with UpdatesOnly), then every change,
// until ctx ends or the Watcher is stopped.
func (b Bucket) Watch(ctx context.Context, keys string, opts WatchOpts) (*Watcher, error) {
	var jo []jetstream.WatchOpt
	if opts.UpdatesOnly {
		jo = append(jo, jetstream.UpdatesOnly())
	}
	if opts.FromRevision > 0 {
		jo = append(jo, jetstream.IncludeHistory(), jetstream.ResumeFromRevision(opts.FromRevision))
	}
	// nats.go gives up creating a watch's consumer after its fixed 5 s
	// API timeout unless ctx has a deadline, and the server takes longer
	// than that to find the current value of each of a million keys (the
	// executor's records: bench --records 1000000). The watch's context
	// therefore has a deadline too far away to matter (nats.go also ends
	// the subscription at it), and the creation is bounded here by
	// watchCreateTimeout instead; cancelling ctx, or Stop, ends the watch.
	wctx, cancel := context.WithDeadline(ctx, time.Now().Add(watchHorizon))
	type created struct {
		kw  jetstream.KeyWatcher
		err error
	}
	ch := make(chan created, 1)
	go func() {
		kw, err := b.kv.Watch(wctx, keys, jo...)
		ch <- created{kw, err}
	}()
	limit := time.NewTimer(watchCreateTimeout)
	defer limit.Stop()
	// A refused consumer create (NATS permissions) gets no reply, only an
	// asynchronous error on the connection: look for it meanwhile, so a
	// refusal is reported at once rather than after watchCreateTimeout.
	poll := time.NewTicker(refusalPoll)
	defer poll.Stop()
	var r created
wait:
	for {
		select {
		case r = <-ch:
			break wait
		case <-poll.C:
			if err := b.refused(); err != nil {
				cancel()
				if r = <-ch; r.err == nil {
					_ = stopWatch(r.kw)
				}
				r.err = err
				break wait
			}
		case <-limit.C:
			cancel()
			if r = <-ch; r.err == nil {
				_ = stopWatch(r.kw)
			}
			r.err = fmt.Errorf("not created in %s: %w", watchCreateTimeout, context.DeadlineExceeded)
			break wait
		}
	}
	if r.err != nil {
		cancel()
		return nil, fmt.Errorf("watch %s %s: %w", b.Name(), keys, r.err)
	}
	w := &Watcher{kw: r.kw, c: make(chan Entry), done: make(chan struct{}), exited: make(chan struct{}), cancel: cancel}
	go w.forward(wctx)
	return w, nil
}

// refused returns the connection's last error when it is a permissions
// violation on a subject of this bucket's stream (its KV_<name> API
// subjects or $KV.<name>.>), and nil otherwise.
func (b Bucket) refused() error {
	nc := b.js.Conn()
	if nc == nil {
		return nil
	}
	err := nc.LastError()
	if err == nil || !errors.Is(err, nats.ErrPermissionViolation) {
		return nil
	}
	msg := err.Error()
	if !strings.Contains(msg, "KV_"+b.Name()+".") && !strings.Contains(msg, "$KV."+b.Name()+".") {
		return nil
	}
	return fmt.Errorf("refused by the NATS server (the user's permissions must allow this bucket, see examples/nats/permissions.conf): %w", err)
}

// refusalPoll is how often a watch being created looks for a refusal.
const refusalPoll = 50 * time.Millisecond

// watchCreateTimeout bounds the creation of a watch; watchHorizon is the
// deadline of its context (see Watch).
const (
	watchCreateTimeout = 2 * time.Minute
	watchHorizon       = 10 * 365 * 24 * time.Hour
)

// Follow reads every key's value, then each change, until ctx ends or the
// watch ends: apply gets each entry in order, and caughtUp is called once,
// after the values present when the watch started and before any later
// change. It returns an error only when the watch cannot start. The
// services' caches of a bucket (task instances, pools, rate limits) are
// built with it.
func (b Bucket) Follow(ctx context.Context, caughtUp func(), apply func(Entry)) error {
	return b.FollowFrom(ctx, 0, caughtUp, apply)
}

// FollowFrom is Follow from revision rev: every change stored from rev on
// (not the current values), then each later change; caughtUp is called
// once those stored when it started are applied. rev 0 is Follow.
func (b Bucket) FollowFrom(ctx context.Context, rev uint64, caughtUp func(), apply func(Entry)) error {
	w, err := b.Watch(ctx, ">", WatchOpts{FromRevision: rev})
	if err != nil {
		return err
	}
	defer func() { _ = w.Stop() }()
	loaded := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return nil
			}
			if e.CaughtUp() {
				if !loaded {
					loaded = true
					caughtUp()
				}
				continue
			}
			apply(e)
		}
	}
}

// WatchAll is Watch of every key.
func (b Bucket) WatchAll(ctx context.Context) (*Watcher, error) {
	return b.Watch(ctx, ">", WatchOpts{})
}

// Entry is a key's value at a revision, or a deletion of it as a watch
// reports it. The zero Entry is a watch's caught-up marker.
type Entry struct {
	e jetstream.KeyValueEntry
}

// CaughtUp reports that e is a watch's marker: every value present when
// the watch began has been reported before it.
func (e Entry) CaughtUp() bool { return e.e == nil }

// Key is the entry's key.
func (e Entry) Key() string { return e.e.Key() }

// Value is the value written (nil for a deletion).
func (e Entry) Value() []byte { return e.e.Value() }

// Revision is the revision of the write.
func (e Entry) Revision() uint64 { return e.e.Revision() }

// Created is when the write was made.
func (e Entry) Created() time.Time { return e.e.Created() }

// IsPut reports that e is a value, not a delete or purge.
func (e Entry) IsPut() bool { return e.e.Operation() == jetstream.KeyValuePut }

// Watcher is a running watch of a bucket (see [Bucket.Watch]).
type Watcher struct {
	kw     jetstream.KeyWatcher
	c      chan Entry
	done   chan struct{}
	exited chan struct{}
	once   sync.Once
	// cancel ends the watch's context (see Watch).
	cancel context.CancelFunc
}

// Updates delivers the watch's entries; it is closed when the watch ends.
func (w *Watcher) Updates() <-chan Entry { return w.c }

// Stop ends the watch and waits until Updates is closed. It is idempotent.
func (w *Watcher) Stop() error {
	w.once.Do(func() { close(w.done) })
	<-w.exited
	err := stopWatch(w.kw)
	w.cancel()
	return err
}

// stopWatch stops a nats.go key watcher and reads what it still delivers
// until its channel closes. Its message handler sends each entry into a
// 256-entry channel while holding the watcher's lock, and the channel is
// closed (under that lock) only after the handler returns: a watcher
// stopped with a full channel that nobody reads keeps its subscription's
// goroutine blocked forever (goleak caught it in the queue tests). The
// read is bounded so a connection that never reports the close cannot
// hang the caller.
func stopWatch(kw jetstream.KeyWatcher) error {
	err := kw.Stop()
	bound := time.NewTimer(5 * time.Second)
	defer bound.Stop()
	for {
		select {
		case _, ok := <-kw.Updates():
			if !ok {
				return err
			}
		case <-bound.C:
			return err
		}
	}
}

func (w *Watcher) forward(ctx context.Context) {
	defer close(w.exited)
	defer close(w.c)
	in := w.kw.Updates()
	for {
		select {
		case <-w.done:
			return
		case <-ctx.Done():
			return
		case e, ok := <-in:
			if !ok {
				return
			}
			select {
			case w.c <- Entry{e: e}:
			case <-w.done:
				return
			case <-ctx.Done():
				return
			}
		}
	}
}

// JetStream is the bucket as nats.go's jetstream sees it, for tests that
// inspect it directly. Services use the methods above: the layering test
// (internal/layering) keeps them from using it.
func (b Bucket) JetStream() jetstream.KeyValue { return b.kv }
