package sdk

import (
	"errors"
	"fmt"
)

// ErrDeferred is wrapped by the error Task.Defer returns once the worker has
// accepted the deferral. A TaskFunc returns it to end the try as deferred.
var ErrDeferred = errors.New("task deferred")

// ErrNotFound matches an *APIError whose code is "not_found": the
// variable, connection or XCom asked for does not exist.
var ErrNotFound = errors.New("not found")

// ErrWorkerGone is the cause of a task context cancelled because the
// connection to the worker was lost.
var ErrWorkerGone = errors.New("connection to the worker lost")

// APIError is an ErrorResponse from the worker to one request.
type APIError struct {
	// Code is the ErrorResponse's short machine name: "not_found",
	// "forbidden", "bad_request", "api_error", ...
	Code string
	// Detail is what the worker said besides; "message" usually explains.
	Detail map[string]any
}

func (e *APIError) Error() string {
	if msg, ok := e.Detail["message"].(string); ok && msg != "" {
		return e.Code + ": " + msg
	}
	return e.Code
}

// Is reports whether the error is ErrNotFound (for the "not_found" code).
func (e *APIError) Is(target error) bool {
	return target == ErrNotFound && e.Code == "not_found"
}

// SkipError ends the try as skipped. Return one with Skip.
type SkipError struct {
	Reason string
}

func (e *SkipError) Error() string { return "task skipped: " + e.Reason }

// Skip returns an error that, returned by a TaskFunc, ends the try as
// skipped with reason.
func Skip(reason string) error { return &SkipError{Reason: reason} }

// FailError ends the try as failed, with no retry (a non-retryable error).
// Return one with Fail.
type FailError struct {
	Err error
}

func (e *FailError) Error() string {
	if e.Err == nil {
		return "task failed"
	}
	return e.Err.Error()
}

func (e *FailError) Unwrap() error { return e.Err }

// Fail returns an error that, returned by a TaskFunc, fails the try without
// a retry, whatever tries remain. err explains why and may be nil.
func Fail(err error) error { return &FailError{Err: err} }

// PanicError is a panic of a TaskFunc, recovered at the task boundary.
type PanicError struct {
	Value any
	Stack string
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("panic: %v\n\n%s", e.Value, e.Stack)
}
