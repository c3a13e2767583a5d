package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// MaxFrameSizeDefault is the default largest frame body accepted, in bytes.
const MaxFrameSizeDefault = 4 << 20

// ReadFrame reads one frame from r and returns its body. max is the largest
// body accepted (MaxFrameSizeDefault when max <= 0); a longer header fails
// with ErrFrameTooLarge before anything is allocated, and leaves the stream
// out of step. It returns io.EOF when r ends cleanly before a frame and
// io.ErrUnexpectedEOF when it ends inside one.
func ReadFrame(r io.Reader, max int) ([]byte, error) {
	if max <= 0 {
		max = MaxFrameSizeDefault
	}
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err // io.EOF before a byte, io.ErrUnexpectedEOF after some
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(max) {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrFrameTooLarge, n, max)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return body, nil
}

// WriteFrame writes body as one frame, with a single Write call.
func WriteFrame(w io.Writer, body []byte) error {
	if uint64(len(body)) > math.MaxUint32 {
		return fmt.Errorf("%w: %d bytes do not fit a frame header", ErrFrameTooLarge, len(body))
	}
	frame := make([]byte, 4+len(body))
	binary.BigEndian.PutUint32(frame, uint32(len(body)))
	copy(frame[4:], body)
	_, err := w.Write(frame)
	return err
}
