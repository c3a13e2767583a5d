package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// logReadMaxBytes bounds what a log reader buffers from the server: a
// reader of a log of any size holds about this much at once.
const logReadMaxBytes = 1 << 20

// LogReadOpts are options of [Client.EachLog].
type LogReadOpts struct {
	// Tail, when > 0, reads only the last Tail lines (the log is scanned
	// with at most Tail lines held).
	Tail int
}

// EachLog calls fn with each log line of tiID's try (of all tries when try
// is 0) stored when it is called, in the order they were published, holding
// about logReadMaxBytes at a time whatever the log's size: fn is called as
// lines arrive, and a slow fn slows the read. fn must not keep the line's
// Data after it returns. An error of fn stops the read and is returned.
func (c *Client) EachLog(ctx context.Context, tiID string, try int, opts LogReadOpts, fn func(LogLine) error) error {
	filter, err := logFilter(tiID, try)
	if err != nil {
		return fmt.Errorf("read logs: %w", err)
	}
	last, err := c.stream(StreamLogs).GetLastMsgForSubject(ctx, filter)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read logs of %s: last sequence: %w", filter, err)
	}
	cons, err := c.logConsumer(ctx, filter)
	if err != nil {
		return fmt.Errorf("read logs of %s: %w", filter, err)
	}
	it, err := cons.Messages(jetstream.PullMaxBytes(logReadMaxBytes))
	if err != nil {
		return fmt.Errorf("read logs of %s: %w", filter, err)
	}
	defer it.Stop()
	emit := fn
	var ring *lineRing
	if opts.Tail > 0 {
		ring = &lineRing{lines: make([]LogLine, 0, min(opts.Tail, 4096)), max: opts.Tail}
		emit = ring.push
	}
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return fmt.Errorf("read logs of %s: %w", filter, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("read logs of %s: %w", filter, err)
		}
		if meta.Sequence.Stream > last.Sequence {
			break
		}
		if err := splitLogMsg(msg.Subject(), msg.Data(), emit); err != nil {
			return err
		}
		// NumPending 0: the last message was removed (max age) meanwhile.
		if meta.Sequence.Stream >= last.Sequence || meta.NumPending == 0 {
			break
		}
	}
	if ring != nil {
		return ring.each(fn)
	}
	return nil
}

// lineRing keeps the last max lines pushed, copied.
type lineRing struct {
	lines []LogLine
	max   int
	next  int // index of the oldest line once full
}

func (r *lineRing) push(l LogLine) error {
	l.Data = append([]byte(nil), l.Data...)
	if len(r.lines) < r.max {
		r.lines = append(r.lines, l)
		return nil
	}
	r.lines[r.next] = l
	r.next = (r.next + 1) % r.max
	return nil
}

func (r *lineRing) each(fn func(LogLine) error) error {
	for i := range r.lines {
		if err := fn(r.lines[(r.next+i)%len(r.lines)]); err != nil {
			return err
		}
	}
	return nil
}

// PurgeLogsOpts chooses the log lines [Client.PurgeLogs] removes: exactly
// one of its fields must be set.
type PurgeLogsOpts struct {
	// OlderThan removes the lines stored longer ago than this.
	OlderThan time.Duration
	// TaskInstanceID removes every line of this task instance.
	TaskInstanceID string
	// All removes every line.
	All bool
}

// ErrPurgeOpts is returned by [Client.PurgeLogs] for options choosing not
// exactly one kind of purge.
var ErrPurgeOpts = errors.New("queue: purge logs: give exactly one of older-than, task instance, all")

// PurgeLogs removes log lines from the LOGS stream and returns how many
// messages (batches of lines) were removed (from the stream's counts
// before and after: lines written meanwhile make it approximate).
func (c *Client) PurgeLogs(ctx context.Context, opts PurgeLogsOpts) (uint64, error) {
	n := 0
	for _, set := range []bool{opts.OlderThan > 0, opts.TaskInstanceID != "", opts.All} {
		if set {
			n++
		}
	}
	if n != 1 || opts.OlderThan < 0 {
		return 0, ErrPurgeOpts
	}
	s := c.stream(StreamLogs)
	before, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("purge logs: %w", err)
	}
	var popts []jetstream.StreamPurgeOpt
	switch {
	case opts.TaskInstanceID != "":
		filter, err := logFilter(opts.TaskInstanceID, 0)
		if err != nil {
			return 0, fmt.Errorf("purge logs: %w", err)
		}
		popts = append(popts, jetstream.WithPurgeSubject(filter))
	case opts.OlderThan > 0:
		seq, err := c.firstLogSince(ctx, time.Now().Add(-opts.OlderThan), before.State.LastSeq)
		if err != nil {
			return 0, fmt.Errorf("purge logs: %w", err)
		}
		// Purge removes the messages below seq.
		popts = append(popts, jetstream.WithPurgeSequence(seq))
	}
	if err := s.Purge(ctx, popts...); err != nil {
		return 0, fmt.Errorf("purge logs: %w", err)
	}
	after, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("purge logs: %w", err)
	}
	if after.State.Msgs >= before.State.Msgs {
		return 0, nil
	}
	return before.State.Msgs - after.State.Msgs, nil
}

// firstLogSince is the sequence of the first LOGS message stored at or
// after t, or last+1 when there is none.
func (c *Client) firstLogSince(ctx context.Context, t time.Time, last uint64) (uint64, error) {
	cons, err := c.js.OrderedConsumer(ctx, StreamLogs, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{"log.>"},
		DeliverPolicy:     jetstream.DeliverByStartTimePolicy,
		OptStartTime:      &t,
		InactiveThreshold: logReaderInactiveThreshold,
	})
	if err != nil {
		return 0, err
	}
	cinfo, err := cons.Info(ctx)
	if err != nil {
		return 0, err
	}
	if cinfo.NumPending == 0 {
		return last + 1, nil
	}
	msgs, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		return 0, err
	}
	msg, ok := <-msgs.Messages()
	if !ok {
		if err := msgs.Error(); err != nil {
			return 0, err
		}
		return last + 1, nil
	}
	meta, err := msg.Metadata()
	if err != nil {
		return 0, err
	}
	return meta.Sequence.Stream, nil
}
