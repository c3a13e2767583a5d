package executor

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Defaults of the record retention (Config.RecordRetention,
// Config.RetentionInterval), as Airflow's "db clean" keeps 30 days.
const (
	RecordRetentionDefault   = 30 * 24 * time.Hour
	RetentionIntervalDefault = 10 * time.Minute
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

// cleanRecords deletes the finished records last changed before
// now-RecordRetention, after appending each to the day's export file in
// Config.RecordExportDir (when set) and syncing it: a record is never
// deleted unexported. A record changed meanwhile (retried) stays. It
// returns how many it deleted.
func (e *Executor) cleanRecords(ctx context.Context, now time.Time) (int, error) {
	cutoff := now.Add(-e.cfg.RecordRetention)
	type old struct {
		id  string
		raw []byte
		rev uint64
	}
	var sel []old
	e.store.mu.RLock()
	for id, c := range e.store.cache {
		if c.ti.State.Terminal() && c.ti.UpdatedAt.Before(cutoff) {
			sel = append(sel, old{id: id, raw: c.raw, rev: c.rev})
		}
	}
	e.store.mu.RUnlock()
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
		if err := e.store.kv.PurgeAt(ctx, r.id, r.rev); err != nil {
			// Changed meanwhile (retried), or NATS away: kept for now.
			e.log.Debug("record retention: kept", "ti_id", r.id, "err", err)
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
