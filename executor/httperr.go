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
)

var (
	errBadRequest   = errors.New("bad request")
	errUnauthorized = errors.New("unauthorized")
)

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadRequest, fmt.Sprintf(format, args...))
}

// writeError maps typed errors to HTTP statuses, in this one place.
func (e *Executor) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var mbe *http.MaxBytesError
	status, code := http.StatusInternalServerError, "internal"
	switch {
	case errors.As(err, &mbe):
		status, code = http.StatusRequestEntityTooLarge, "too_large"
	case errors.Is(err, ErrTokenForeign):
		status, code = http.StatusForbidden, "forbidden"
	case errors.Is(err, ErrTokenInvalid), errors.Is(err, errUnauthorized):
		status, code = http.StatusUnauthorized, "unauthorized"
	case errors.Is(err, ErrNotFound):
		status, code = http.StatusNotFound, "not_found"
	case errors.Is(err, activity.ErrIllegalTransition), errors.Is(err, ErrConflict):
		status, code = http.StatusConflict, "conflict"
	case errors.Is(err, activity.ErrInvalid), errors.Is(err, errBadRequest), errors.Is(err, activity.ErrUnknownState):
		status, code = http.StatusBadRequest, "bad_request"
	}
	if status == http.StatusInternalServerError {
		e.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="taskwire"`)
	}
	writeJSON(w, status, execution.ErrorBody{Error: code, Detail: err.Error()})
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
	if len(bytes.TrimSpace(data)) == 0 {
		return badRequest("empty body: want a JSON object")
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
