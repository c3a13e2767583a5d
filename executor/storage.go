package executor

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// storageCheckInterval is how often Config.StorageCheck is called.
const storageCheckInterval = time.Second

// watchStorage calls cfg.StorageCheck every storageCheckInterval and keeps
// its answer for storageErr, until ctx is done.
func (e *Executor) watchStorage(ctx context.Context) {
	if e.cfg.StorageCheck == nil {
		return
	}
	check := func() {
		err := e.cfg.StorageCheck()
		prev := e.storage.Swap(&storageState{err: err})
		switch {
		case err != nil && (prev == nil || prev.err == nil):
			e.log.Error("storage full: refusing new work until space is freed", "err", err)
		case err == nil && prev != nil && prev.err != nil:
			e.log.Info("storage has room again: taking new work")
		}
	}
	check()
	t := time.NewTicker(storageCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		check()
	}
}

type storageState struct{ err error }

// storageErr is the last storage check's failure, as an
// ErrStorageUnavailable, or nil.
func (e *Executor) storageErr() error {
	if s := e.storage.Load(); s != nil && s.err != nil {
		return fmt.Errorf("%w: %w", ErrStorageUnavailable, s.err)
	}
	return nil
}

// StorageReady is a readiness check: nil unless the storage check failed.
func (e *Executor) StorageReady() error {
	if err := e.storageErr(); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	return nil
}

// needStorage answers a write request 507 at once while the storage check
// fails, instead of letting it wait for a store that cannot take it; reads
// go through.
func (e *Executor) needStorage(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if err := e.storageErr(); err != nil {
				e.writeError(w, r, err)
				return
			}
		}
		next(w, r)
	}
}
