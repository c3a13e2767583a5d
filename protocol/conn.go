package protocol

import (
	"bufio"
	"fmt"
	"io"
	"sync"
)

// Conn reads and writes frames of one codec on a stream. It is safe for one
// reading goroutine and any number of writing goroutines at once: writes are
// serialized, and each frame goes out in one Write call.
//
// A read that fails on the stream (io.EOF, ErrFrameTooLarge, a network error)
// leaves the read side unusable; one that fails only to decode a body
// (ErrMalformedFrame, ErrUnknownMessageType) consumed the whole frame, so
// reading may go on.
type Conn struct {
	codec Codec
	max   int

	rmu sync.Mutex
	r   *bufio.Reader

	wmu sync.Mutex
	w   io.Writer
}

// NewConn returns a Conn on rw. maxFrame is the largest body read or written
// (MaxFrameSizeDefault when 0 or less).
func NewConn(rw io.ReadWriter, codec Codec, maxFrame int) *Conn {
	if maxFrame <= 0 {
		maxFrame = MaxFrameSizeDefault
	}
	return &Conn{codec: codec, max: maxFrame, r: bufio.NewReader(rw), w: rw}
}

// Codec returns the connection's codec.
func (c *Conn) Codec() Codec { return c.codec }

// WriteRequest writes the request [id, msg].
func (c *Conn) WriteRequest(id int, msg Message) error {
	body, err := c.codec.EncodeRequest(id, msg)
	if err != nil {
		return err
	}
	return c.write(body)
}

// WriteResponse writes the response [id, msg, errResp]; msg and errResp may
// be nil.
func (c *Conn) WriteResponse(id int, msg Message, errResp *ErrorResponse) error {
	body, err := c.codec.EncodeResponse(id, msg, errResp)
	if err != nil {
		return err
	}
	return c.write(body)
}

func (c *Conn) write(body []byte) error {
	if len(body) > c.max {
		return fmt.Errorf("write frame: %w: %d bytes, the limit is %d", ErrFrameTooLarge, len(body), c.max)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return WriteFrame(c.w, body)
}

// ReadRequest reads and decodes one request frame. A body that does not
// decode is named by its length, and as an auth frame when it is one (an
// auth frame after the connection's auth; its secret is never shown).
func (c *Conn) ReadRequest() (Request, error) {
	body, err := c.read()
	if err != nil {
		return Request{}, err
	}
	req, err := c.codec.DecodeRequest(body)
	if err != nil {
		return req, fmt.Errorf("%w (%s)", err, describeBody(body))
	}
	return req, nil
}

// describeBody names a request body that did not decode, for the error:
// its length, and whether it is an auth frame (with or without a secret).
func describeBody(body []byte) string {
	if a, err := ParseAuth(body); err == nil {
		secret := "a secret"
		if a.Secret == "" {
			secret = "an empty secret"
		}
		return fmt.Sprintf("a %d-byte body: an auth frame with %s, where a request was due", len(body), secret)
	}
	return fmt.Sprintf("a %d-byte body", len(body))
}

// ReadResponse reads and decodes one response frame.
func (c *Conn) ReadResponse() (Response, error) {
	body, err := c.read()
	if err != nil {
		return Response{}, err
	}
	return c.codec.DecodeResponse(body)
}

func (c *Conn) read() ([]byte, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	return ReadFrame(c.r, c.max)
}
