package queue

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// PublishActivities publishes n activities on queue without waiting for
// each acknowledgement before the next, at most window (≥ 1) awaiting
// theirs at once: a backlog, a backfill, a benchmark. msg(i) returns the
// i-th activity's Nats-Msg-Id and data; acked, when not nil, is called
// after each acknowledgement. It returns once every one is acknowledged,
// or at the first error.
func (c *Client) PublishActivities(ctx context.Context, queue string, n, window int, msg func(i int) (msgID string, data []byte), acked func()) error {
	if err := ValidQueueName(queue); err != nil {
		return fmt.Errorf("publish activities: %w", err)
	}
	if err := c.publishBulk(ctx, ActivitySubject(queue), n, window, msg, acked); err != nil {
		return fmt.Errorf("publish activities on %s: %w", queue, err)
	}
	return nil
}

// PublishTriggers is [Client.PublishActivities] for new triggers (see
// [Client.PublishTrigger]); msg(i) returns the trigger id and data.
func (c *Client) PublishTriggers(ctx context.Context, n, window int, msg func(i int) (triggerID string, data []byte), acked func()) error {
	if err := c.publishBulk(ctx, TriggerSubject, n, window, msg, acked); err != nil {
		return fmt.Errorf("publish triggers: %w", err)
	}
	return nil
}

func (c *Client) publishBulk(ctx context.Context, subject string, n, window int, msg func(int) (string, []byte), acked func()) error {
	pending := make(chan jetstream.PubAckFuture, max(window, 1))
	wait := func(f jetstream.PubAckFuture) error {
		select {
		case <-f.Ok():
			if acked != nil {
				acked()
			}
			return nil
		case err := <-f.Err():
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for i := range n {
		if len(pending) == cap(pending) {
			if err := wait(<-pending); err != nil {
				return err
			}
		}
		id, data := msg(i)
		f, err := c.js.PublishAsync(subject, data, jetstream.WithMsgID(id))
		if err != nil {
			return err
		}
		pending <- f
	}
	for len(pending) > 0 {
		if err := wait(<-pending); err != nil {
			return err
		}
	}
	return nil
}
