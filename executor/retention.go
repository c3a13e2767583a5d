package executor

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/queue"
)

// Defaults of the record retention (Config.RecordRetention,
// Config.RetentionInterval), as Airflow's "db clean" keeps 30 days.
const (
	RecordRetentionDefault   = 30 * 24 * time.Hour
	RetentionIntervalDefault = 10 * time.Minute
	// RecordCacheDefault is Config.RecordCache's default.
	RecordCacheDefault = 10_000
	// markerRetention is how long the delete markers of purged records are
	// kept (watchers of the bucket see the deletion meanwhile).
	markerRetention = time.Hour
)

// retentionLoop deletes finished records past Config.RecordRetention every
// Config.RetentionInterval, first at start, until ctx is done.
func (e *Executor) retentionLoop(ctx context.Context) {
	if e.cfg.RecordRetention < 0 {
		return
	}
	t := time.NewTicker(e.cfg.RetentionInterval)
	defer t.Stop()
	for {
		n, err := e.cleanRecords(ctx, e.now())
		switch {
		case err != nil && ctx.Err() == nil:
			e.log.Warn("record retention", "err", err, "deleted", n)
		case n > 0:
			e.log.Info("record retention: finished records deleted", "deleted", n,
				"older_than", e.cfg.RecordRetention, "export_dir", e.cfg.RecordExportDir)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// retentionBatch is how many records cleanRecords exports and deletes at
// a time.
const retentionBatch = 1000

// retentionSkew is how much later than the cutoff a record's last change
// may be stored before records changed before the cutoff (clocks of
// several executors): the scan stops at the first record past it.
const retentionSkew = 10 * time.Minute

// cleanRecords deletes the finished records last changed before
// now-RecordRetention, after appending each to the day's export file in
// Config.RecordExportDir (when set) and syncing it: a record is never
// deleted unexported. It reads the bucket's stream from its start (the
// oldest changes) in batches, so it holds one batch whatever the number of
// records. A record changed meanwhile (retried) stays. It returns how many
// it deleted.
func (e *Executor) cleanRecords(ctx context.Context, now time.Time) (int, error) {
	cutoff := now.Add(-e.cfg.RecordRetention)
	first, last, err := e.store.kv.Bounds(ctx)
	if err != nil || last == 0 {
		return 0, err
	}
	n := 0
	for from := first; from <= last; {
		var sel []old
		done := false
		next := last + 1
		err := e.store.kv.Scan(ctx, from, last+1, func(v queue.StoredValue) bool {
			ti, err := activity.UnmarshalRecord(v.Value)
			if err != nil {
				return true
			}
			if ti.UpdatedAt.After(cutoff.Add(retentionSkew)) {
				done = true
				return false
			}
			if ti.State.Terminal() && ti.UpdatedAt.Before(cutoff) {
				sel = append(sel, old{ti: ti, raw: append([]byte(nil), v.Value...), rev: v.Revision})
			}
			if len(sel) >= retentionBatch {
				next = v.Revision + 1
				return false
			}
			return true
		})
		if err != nil {
			return n, err
		}
		k, err := e.purgeRecords(ctx, now, sel)
		n += k
		if err != nil || done || next > last {
			return n, err
		}
		from = next
	}
	return n, nil
}

// old is a record cleanRecords found past retention, at its revision.
type old struct {
	ti  *activity.TaskInstance
	raw []byte
	rev uint64
}

// purgeRecords exports sel (when Config.RecordExportDir is set) and
// deletes each record still at its revision; it returns how many it
// deleted.
func (e *Executor) purgeRecords(ctx context.Context, now time.Time, sel []old) (int, error) {
	// Only current revisions: the stream keeps a record's history too.
	cur := sel[:0]
	for _, r := range sel {
		ok, err := e.store.kv.Latest(ctx, r.ti.ID, r.rev)
		if err != nil {
			return 0, err
		}
		if ok {
			cur = append(cur, r)
		}
	}
	sel = cur
	if len(sel) == 0 {
		return 0, nil
	}
	if dir := e.cfg.RecordExportDir; dir != "" {
		if err := exportRecords(dir, now, func(w *bufio.Writer) error {
			for _, r := range sel {
				if _, err := w.Write(append(r.raw, '\n')); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return 0, fmt.Errorf("export %d records before deleting them: %w", len(sel), err)
		}
	}
	n := 0
	for _, r := range sel {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		// An older revision of a record (its history), or one changed
		// meanwhile, is not current: PurgeAt refuses it.
		if !e.store.purging(r.ti, r.rev) {
			continue
		}
		if err := e.store.kv.PurgeAt(ctx, r.ti.ID, r.rev); err != nil {
			// Changed meanwhile (retried), or NATS away: kept for now.
			e.store.purgeFailed(r.ti.ID)
			e.log.Debug("record retention: kept", "ti_id", r.ti.ID, "err", err)
			continue
		}
		n++
	}
	if err := e.store.kv.PurgeMarkers(ctx, markerRetention); err != nil {
		return n, err
	}
	return n, nil
}

// exportRecords appends what write writes to dir/task-instances-DATE.jsonl
// and syncs it.
func exportRecords(dir string, now time.Time, write func(*bufio.Writer) error) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	path := filepath.Join(dir, "task-instances-"+now.UTC().Format("2006-01-02")+".jsonl")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 64<<10)
	err = write(w)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
