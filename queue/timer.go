package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TimerConsumerName is the durable consumer of timers of kind.
func TimerConsumerName(kind string) string { return "timers-" + kind }

// ScheduleTimer arranges for data to be delivered on timer.<kind> at time at,
// as a JetStream scheduled message held on timer.schedule.<kind>.<id> with
// Nats-Msg-Id id. Schedules have one-second resolution: at is rounded up to
// the next whole second, so the timer never fires before at. Scheduling the
// same id again within the stream's two-minute duplicates window is a no-op;
// later, it replaces a still pending schedule of that kind and id. If at is
// not in the future, data is published on timer.<kind> at once.
//
// kind must be a valid queue name; id must be one subject token (no dots,
// wildcards or whitespace).
func (c *Client) ScheduleTimer(ctx context.Context, kind, id string, at time.Time, data []byte) error {
	if err := ValidQueueName(kind); err != nil {
		return fmt.Errorf("schedule timer %s: kind: %w", id, err)
	}
	if err := validToken("timer id", id); err != nil {
		return fmt.Errorf("schedule timer of kind %s: %w", kind, err)
	}
	target := TimerSubject(kind)
	if !at.After(time.Now()) {
		if _, err := c.js.Publish(ctx, target, data, jetstream.WithMsgID(id)); err != nil {
			return fmt.Errorf("publish due timer %s of kind %s: %w", id, kind, err)
		}
		return nil
	}
	_, err := c.js.Publish(ctx, timerScheduleSubject(kind, id), data,
		jetstream.WithMsgID(id),
		jetstream.WithScheduleAt(ceilSecond(at)),
		jetstream.WithScheduleTarget(target),
	)
	if err != nil {
		return fmt.Errorf("schedule timer %s of kind %s at %s: %w", id, kind, at.Format(time.RFC3339Nano), err)
	}
	return nil
}

// ceilSecond rounds t up to a whole second (schedules are encoded in RFC 3339
// with second precision).
func ceilSecond(t time.Time) time.Time {
	if tr := t.Truncate(time.Second); !tr.Equal(t) {
		return tr.Add(time.Second)
	}
	return t
}

// ConsumeTimers creates or updates the durable pull consumer
// "timers-<kind>" on timer.<kind> (explicit ack) and calls handler for every
// due timer until the returned ConsumeContext is stopped. The handler must
// Ack (or Nak) each message.
func (c *Client) ConsumeTimers(ctx context.Context, kind string, handler func(Delivery)) (*Subscription, error) {
	if err := ValidQueueName(kind); err != nil {
		return nil, fmt.Errorf("consume timers: kind: %w", err)
	}
	cons, err := c.js.CreateOrUpdateConsumer(ctx, StreamTimers, jetstream.ConsumerConfig{
		Durable:       TimerConsumerName(kind),
		Description:   "taskwire timers of kind " + kind,
		FilterSubject: TimerSubject(kind),
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		Replicas:      c.cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("timer consumer %s: %w", kind, err)
	}
	sub, err := c.consume(cons, "timer consumer error", handler, "kind", kind)
	if err != nil {
		return nil, fmt.Errorf("consume timers %s: %w", kind, err)
	}
	return sub, nil
}
