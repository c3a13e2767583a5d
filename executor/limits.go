package executor

import (
	"errors"
	"fmt"
	"net/http"
	"unicode/utf8"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/queue"
)

// ErrStorageUnavailable (answered 507) is the error of a write refused because the
// executor's storage is known to be full (see Config.StorageCheck): the request is
// answered at once rather than after JetStream's own timeout.
var ErrStorageUnavailable = errors.New("storage unavailable")

// detailMax bounds an error answer's detail.
const (
	detailMax = 2 << 10
)

// truncateValue cuts s to 200 bytes for an error message.
func truncateValue(s string) string { return activity.CutValue(s) }

// cutDetail bounds an error answer's detail.
func cutDetail(s string) string {
	if len(s) <= detailMax {
		return s
	}
	cut := detailMax
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…(cut)"
}

// limitOf returns the byte limit a too-large request exceeded (a body over
// the max body size, a value over the NATS max payload); 0 for any other
// error.
func limitOf(err error) int64 {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return mbe.Limit
	}
	var tle *queue.TooLargeError
	if errors.As(err, &tle) {
		return tle.Limit
	}
	return 0
}

// explain names the limit of an oversize body and classifies JetStream's
// refusals (too large, storage full) for statusOf.
func (e *Executor) explain(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return fmt.Errorf("request body exceeds the limit of %d bytes: %w", mbe.Limit, err)
	}
	return e.q.Classify(err)
}
