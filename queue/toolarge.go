package queue

import (
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
)

// ErrTooLarge is matched (errors.Is) by a write refused for its size: a
// message over the NATS server's max payload.
var ErrTooLarge = errors.New("queue: too large")

// TooLargeError is a write refused for its size; Limit is the most NATS
// takes in one message, in bytes.
type TooLargeError struct {
	Limit int64
	Err   error
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%v (the NATS max payload is %d bytes)", e.Err, e.Limit)
}

func (e *TooLargeError) Unwrap() []error { return []error{ErrTooLarge, e.Err} }

// MaxPayload is the most the NATS server takes in one message, in bytes.
func (c *Client) MaxPayload() int64 { return c.nc.MaxPayload() }

// Classify marks err so that callers can branch with errors.Is: a write
// refused for its size matches ErrTooLarge (as a *TooLargeError naming the
// limit), one refused for lack of space ErrStorageFull. Other errors are
// returned as they are.
func (c *Client) Classify(err error) error {
	if err == nil || errors.Is(err, ErrTooLarge) {
		return err
	}
	if errors.Is(err, nats.ErrMaxPayload) {
		return &TooLargeError{Limit: c.nc.MaxPayload(), Err: err}
	}
	return classify(err)
}
