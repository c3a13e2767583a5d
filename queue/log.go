package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// LogLine is one task log line read back from the LOGS stream.
type LogLine struct {
	// Try is the try the line was written by.
	Try int
	// Data is one JSON line, without its newline.
	Data []byte
}

// Log batching defaults of [LogWriter].
const (
	LogFlushIntervalDefault = 100 * time.Millisecond
	LogFlushSizeDefault     = 64 << 10
	// logReaderInactiveThreshold lets the server drop an abandoned log
	// reader's ephemeral consumer.
	logReaderInactiveThreshold = 30 * time.Second
)

// ErrLogWriterClosed is returned by [LogWriter.Write] after Close.
var ErrLogWriterClosed = errors.New("queue: log writer closed")

// LogSubject is the subject of the log lines of try of task instance tiID.
func LogSubject(tiID string, try int) string {
	return "log." + tiID + "." + strconv.Itoa(try)
}

func validLog(tiID string, try int) error {
	if err := validToken("task instance id", tiID); err != nil {
		return err
	}
	if try < 1 {
		return fmt.Errorf("%w: try %d, want >= 1", ErrInvalidToken, try)
	}
	return nil
}

// PublishLogs publishes data, one or more newline-separated JSON lines, as
// one message on log.<tiID>.<try> and waits for the stream's
// acknowledgement.
func (c *Client) PublishLogs(ctx context.Context, tiID string, try int, data []byte) error {
	if err := validLog(tiID, try); err != nil {
		return fmt.Errorf("publish logs: %w", err)
	}
	if _, err := c.js.Publish(ctx, LogSubject(tiID, try), data); err != nil {
		return fmt.Errorf("publish logs of %s try %d: %w", tiID, try, err)
	}
	return nil
}

// LogWriter batches the log lines of one try of a task instance and
// publishes them asynchronously 100ms after the first line of a batch, or
// at 64KiB, whichever comes first. It is safe for concurrent use. Close it
// to flush and wait for the stream's acknowledgements. An idle writer costs
// nothing: no goroutine, no timer (a worker running 10,000 tasks that log
// nothing while they wait holds 10,000 of them).
type LogWriter struct {
	c       *Client
	subject string

	mu      sync.Mutex
	buf     []byte
	futures []jetstream.PubAckFuture
	err     error // first failure, sticky
	closed  bool
	// trunc enforces the per-try byte limit (logtruncate.go).
	trunc truncation
	// timer flushes the buffer LogFlushIntervalDefault after its first
	// line; armed while it runs.
	timer *time.Timer
	armed bool
}

// NewLogWriter returns a LogWriter for log.<tiID>.<try>. An invalid tiID or
// try is reported by the first Write and by Close.
func NewLogWriter(c *Client, tiID string, try int) *LogWriter {
	w := &LogWriter{
		c:       c,
		subject: LogSubject(tiID, try),
	}
	w.trunc.limit = c.cfg.Limits.LogPerTry
	if err := validLog(tiID, try); err != nil {
		w.err = fmt.Errorf("log writer: %w", err)
	}
	return w
}

// tick is the flush timer's: it publishes what was buffered meanwhile.
func (w *LogWriter) tick() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.armed = false
	if !w.closed {
		w.flushLocked()
	}
}

// Write buffers one log line (a trailing newline is dropped). It returns the
// first error of an earlier asynchronous publish, if any.
func (w *LogWriter) Write(line []byte) error {
	line = bytes.TrimSuffix(line, []byte("\n"))
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrLogWriterClosed
	}
	if w.err != nil {
		return w.err
	}
	if len(line) == 0 {
		return nil
	}
	if line = w.trunc.admit(line); line == nil {
		return nil
	}
	if len(w.buf) > 0 && len(w.buf)+len(line)+1 > LogFlushSizeDefault {
		w.flushLocked()
	}
	w.buf = append(w.buf, line...)
	w.buf = append(w.buf, '\n')
	if len(w.buf) >= LogFlushSizeDefault {
		w.flushLocked()
	}
	if len(w.buf) > 0 && !w.armed {
		w.armed = true
		if w.timer == nil {
			w.timer = time.AfterFunc(LogFlushIntervalDefault, w.tick)
		} else {
			w.timer.Reset(LogFlushIntervalDefault)
		}
	}
	return w.err
}

// flushLocked publishes the buffer asynchronously and forgets
// acknowledged publishes. w.mu must be held.
func (w *LogWriter) flushLocked() {
	kept := w.futures[:0]
	for _, f := range w.futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			w.fail(err)
		default:
			kept = append(kept, f)
		}
	}
	clear(w.futures[len(kept):])
	w.futures = kept
	if len(w.buf) == 0 || w.err != nil {
		return
	}
	data := bytes.TrimSuffix(w.buf, []byte("\n"))
	f, err := w.c.js.PublishAsync(w.subject, bytes.Clone(data))
	w.buf = w.buf[:0]
	if err != nil {
		w.fail(err)
		return
	}
	w.futures = append(w.futures, f)
}

func (w *LogWriter) fail(err error) {
	if w.err == nil {
		w.err = fmt.Errorf("publish logs on %s: %w", w.subject, err)
	}
}

// Flush publishes the buffered lines now, without waiting for the
// stream's acknowledgement (Close waits for it). It does nothing after
// Close.
func (w *LogWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.flushLocked()
	}
}

// Close flushes buffered lines and waits until the stream acknowledged
// every publish or ctx is done. It returns the first publish failure. Close
// is idempotent; later calls return the same error.
func (w *LogWriter) Close(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.closed = true
		if w.timer != nil {
			w.timer.Stop() // a tick already under way finds it closed
		}
	}
	if tail := w.trunc.summary(); tail != nil && w.err == nil {
		w.buf = append(append(w.buf, tail...), '\n')
	}
	w.flushLocked()
	for len(w.futures) > 0 {
		f := w.futures[0]
		select {
		case <-f.Ok():
		case err := <-f.Err():
			w.fail(err)
		case <-ctx.Done():
			w.fail(fmt.Errorf("wait for %d acks: %w", len(w.futures), ctx.Err()))
			w.futures = nil
			return w.err
		}
		w.futures = w.futures[1:]
	}
	return w.err
}

// logFilter is the LOGS subject filter of tiID's try, or of all its tries
// when try is 0.
func logFilter(tiID string, try int) (string, error) {
	if err := validToken("task instance id", tiID); err != nil {
		return "", err
	}
	switch {
	case try == 0:
		return "log." + tiID + ".*", nil
	case try > 0:
		return LogSubject(tiID, try), nil
	default:
		return "", fmt.Errorf("%w: try %d, want >= 0", ErrInvalidToken, try)
	}
}

// splitLogMsg splits one LOGS message into its lines.
func splitLogMsg(subject string, data []byte, fn func(LogLine) error) error {
	try, err := strconv.Atoi(subject[strings.LastIndexByte(subject, '.')+1:])
	if err != nil {
		return fmt.Errorf("log subject %s: bad try: %w", subject, err)
	}
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		if err := fn(LogLine{Try: try, Data: line}); err != nil {
			return err
		}
	}
	return nil
}

func (c *Client) logConsumer(ctx context.Context, filter string) (jetstream.Consumer, error) {
	return c.js.OrderedConsumer(ctx, StreamLogs, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{filter},
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: logReaderInactiveThreshold,
	})
}

// ReadLogs returns the log lines of tiID's try (of all tries when try is 0)
// stored when it is called, in the order they were published. It holds the
// whole log: use [Client.EachLog] for a log of any size.
func (c *Client) ReadLogs(ctx context.Context, tiID string, try int) ([]LogLine, error) {
	var lines []LogLine
	err := c.EachLog(ctx, tiID, try, LogReadOpts{}, func(l LogLine) error {
		l.Data = bytes.Clone(l.Data)
		lines = append(lines, l)
		return nil
	})
	return lines, err
}

// FollowLogs calls fn with every log line of tiID's try (of all tries when
// try is 0), first those stored, then new ones as they are published, until
// ctx is done (returning ctx.Err()) or fn returns an error (returning it).
func (c *Client) FollowLogs(ctx context.Context, tiID string, try int, fn func(LogLine) error) error {
	filter, err := logFilter(tiID, try)
	if err != nil {
		return fmt.Errorf("follow logs: %w", err)
	}
	cons, err := c.logConsumer(ctx, filter)
	if err != nil {
		return fmt.Errorf("follow logs of %s: %w", filter, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("follow logs of %s: %w", filter, err)
	}
	defer it.Stop()
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return ctxErr
			}
			return fmt.Errorf("follow logs of %s: %w", filter, err)
		}
		if err := splitLogMsg(msg.Subject(), msg.Data(), fn); err != nil {
			return err
		}
	}
}
