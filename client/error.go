package client

import (
	"errors"
	"fmt"
	"net/http"
)

// Sentinels matched (errors.Is) by an *APIError of the corresponding status.
// ErrBadRequest is also returned, wrapped, for arguments refused before any
// request is sent (an empty id).
var (
	ErrBadRequest   = errors.New("bad request")  // 400, 413, 422
	ErrUnauthorized = errors.New("unauthorized") // 401: no or a wrong operator token
	ErrForbidden    = errors.New("forbidden")    // 403
	ErrNotFound     = errors.New("not found")    // 404
	ErrConflict     = errors.New("conflict")     // 409: e.g. cancelling a finished task
	// ErrTooLarge: 413, a body or value over a limit the detail names (it
	// matches ErrBadRequest too).
	ErrTooLarge = errors.New("too large")
	// ErrStorageFull: 507, the executor's storage is full; try again once
	// an operator freed space (it matches no other sentinel).
	ErrStorageFull = errors.New("storage full")
)

// APIError is an error answer of the public API: its HTTP status and the
// body's {"error": code, "detail": message}.
type APIError struct {
	Status int
	Code   string
	Detail string
}

func (e *APIError) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("%d %s", e.Status, e.Code)
	}
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Detail)
}

// Is makes errors.Is(err, ErrNotFound) (and the other sentinels) true for
// the matching status.
func (e *APIError) Is(target error) bool {
	switch e.Status {
	case http.StatusRequestEntityTooLarge:
		return target == ErrBadRequest || target == ErrTooLarge
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return target == ErrBadRequest
	case http.StatusUnauthorized:
		return target == ErrUnauthorized
	case http.StatusForbidden:
		return target == ErrForbidden
	case http.StatusNotFound:
		return target == ErrNotFound
	case http.StatusConflict:
		return target == ErrConflict
	case http.StatusInsufficientStorage:
		return target == ErrStorageFull
	}
	return false
}

// temporary reports whether err may go away by itself: a transport error, a
// per-call timeout, or a 429/5xx answer.
func temporary(err error) bool {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status == http.StatusTooManyRequests || ae.Status >= 500
	}
	return true
}
