package executor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/execution"
	"github.com/taskwire/taskwire/queue"
)

var (
	errBadRequest   = errors.New("bad request")
	errUnauthorized = errors.New("unauthorized")
	// errMethodNotAllowed: the path has routes, none for the method.
	errMethodNotAllowed = errors.New("method not allowed")
)

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadRequest, fmt.Sprintf(format, args...))
}

// statusOf maps a typed error to its HTTP status and error code, in this
// one place.
func statusOf(err error) (status int, code string) {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe), errors.Is(err, queue.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, "too_large"
	case errors.Is(err, queue.ErrStorageFull), errors.Is(err, ErrStorageUnavailable):
		return http.StatusInsufficientStorage, "storage_full"
	case errors.Is(err, ErrTokenForeign):
		return http.StatusForbidden, "forbidden"
	case errors.Is(err, ErrTokenInvalid), errors.Is(err, errUnauthorized):
		return http.StatusUnauthorized, "unauthorized"
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound, "not_found"
	case errors.Is(err, errMethodNotAllowed):
		return http.StatusMethodNotAllowed, "method_not_allowed"
	case errors.Is(err, activity.ErrIllegalTransition), errors.Is(err, ErrConflict):
		return http.StatusConflict, "conflict"
	case errors.Is(err, activity.ErrInvalid), errors.Is(err, errBadRequest), errors.Is(err, activity.ErrUnknownState):
		return http.StatusBadRequest, "bad_request"
	}
	return http.StatusInternalServerError, "internal"
}

// writeError answers err with its status (statusOf) and an ErrorBody.
func (e *Executor) writeError(w http.ResponseWriter, r *http.Request, err error) {
	err = e.explain(err)
	status, code := statusOf(err)
	if status == http.StatusInternalServerError {
		e.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="taskwire"`)
	}
	if status == http.StatusServiceUnavailable || status == http.StatusInsufficientStorage {
		w.Header().Set("Retry-After", "10")
	}
	writeJSON(w, status, execution.ErrorBody{Error: code, Detail: cutDetail(err.Error()), Limit: limitOf(err)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decodeBody reads a JSON body of at most max bytes into v, refusing unknown
// fields and trailing data.
func decodeBody(w http.ResponseWriter, r *http.Request, max int64, v any) error {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		return err
	}
	return decodeJSON(data, v)
}

// decodeJSON decodes one JSON object from data into v, refusing an empty
// body, another JSON value (null would decode as an empty object), unknown
// fields and trailing data.
func decodeJSON(data []byte, v any) error {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return badRequest("empty body: want a JSON object")
	}
	if data[0] != '{' {
		return badRequest("body: want a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("body: %v", err)
	}
	if dec.More() {
		return badRequest("body: trailing data after the JSON value")
	}
	return nil
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}
