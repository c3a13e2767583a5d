package queue

import (
	"context"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Subjects and consumers of deferral.
const (
	// TriggerSubject carries new triggers of deferred tasks (TRIGGERS).
	TriggerSubject = "trigger.new"
	// TriggerConsumerName is the durable consumer shared by all triggerers.
	TriggerConsumerName = "triggerers"
	// EventConsumerName is the durable consumer shared by all executors.
	EventConsumerName = "executors"
	// TriggerAckWaitDefault is how long a pulled trigger may stay
	// unacknowledged (a triggerer that died between pull and claim, or a
	// delivery lost when the connection to NATS broke) before JetStream
	// hands it out again. A claim is one KV create, acked at once, and a
	// second delivery finds the claim taken, so this can be short; at 30s a
	// NATS restart held deferred tasks up for 30s.
	TriggerAckWaitDefault = 5 * time.Second
	// EventAckWaitDefault is the same for fired events and executors.
	EventAckWaitDefault = 30 * time.Second
)

// EventSubject is the subject of the fired trigger events of task instance
// tiID.
func EventSubject(tiID string) string { return "event." + tiID }

// PublishTrigger publishes a new trigger on trigger.new with Nats-Msg-Id
// triggerID, so a repeated publish within the duplicates window is stored
// once.
func (c *Client) PublishTrigger(ctx context.Context, triggerID string, data []byte) error {
	if triggerID == "" {
		return fmt.Errorf("publish trigger: empty trigger id")
	}
	if _, err := c.js.Publish(ctx, TriggerSubject, data, jetstream.WithMsgID(triggerID)); err != nil {
		return fmt.Errorf("publish trigger %s: %w", triggerID, err)
	}
	return nil
}

// TriggerConsumer creates or updates the durable pull consumer of new
// triggers shared by all triggerers (theirs alone, so even a bound client
// sets it).
func (c *Client) TriggerConsumer(ctx context.Context) (Consumer, error) {
	cons, err := c.js.CreateOrUpdateConsumer(ctx, StreamTriggers, jetstream.ConsumerConfig{
		Durable:       TriggerConsumerName,
		Description:   "taskwire triggerers",
		FilterSubject: TriggerSubject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       TriggerAckWaitDefault,
		MaxAckPending: activityMaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		Replicas:      c.cfg.Replicas,
	})
	if err != nil {
		return Consumer{}, fmt.Errorf("trigger consumer: %w", err)
	}
	return Consumer{c: cons}, nil
}

// PublishEvent publishes a fired trigger's event for task instance tiID
// with Nats-Msg-Id triggerID: a trigger that fired twice (it ran in two
// places, or a triggerer and the executor's timeout backstop both fired it)
// is stored once within the duplicates window.
func (c *Client) PublishEvent(ctx context.Context, tiID, triggerID string, data []byte) error {
	if err := validToken("task instance id", tiID); err != nil {
		return fmt.Errorf("publish event of trigger %s: %w", triggerID, err)
	}
	if triggerID == "" {
		return fmt.Errorf("publish event of %s: empty trigger id", tiID)
	}
	if _, err := c.js.Publish(ctx, EventSubject(tiID), data, jetstream.WithMsgID(triggerID)); err != nil {
		return fmt.Errorf("publish event of trigger %s: %w", triggerID, err)
	}
	return nil
}

// EventConsumer creates or updates the durable pull consumer of fired
// trigger events shared by all executors.
func (c *Client) EventConsumer(ctx context.Context) (Consumer, error) {
	cons, err := c.js.CreateOrUpdateConsumer(ctx, StreamEvents, jetstream.ConsumerConfig{
		Durable:       EventConsumerName,
		Description:   "taskwire executors resuming deferred tasks",
		FilterSubject: "event.>",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       EventAckWaitDefault,
		MaxAckPending: activityMaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		Replicas:      c.cfg.Replicas,
	})
	if err != nil {
		return Consumer{}, fmt.Errorf("event consumer: %w", err)
	}
	return Consumer{c: cons}, nil
}

// ConsumeEvents calls handler for every fired trigger event (see
// [Client.EventConsumer]) until the returned Subscription is stopped; the
// handler must settle each delivery. Errors of the consumer are logged.
func (c *Client) ConsumeEvents(ctx context.Context, handler func(Delivery)) (*Subscription, error) {
	cons, err := c.EventConsumer(ctx)
	if err != nil {
		return nil, err
	}
	return c.consume(cons.c, "trigger event consumer", handler)
}

// consume pushes cons's messages to handler, logging consumer errors under
// what.
func (c *Client) consume(cons jetstream.Consumer, what string, handler func(Delivery), attrs ...any) (*Subscription, error) {
	cc, err := cons.Consume(func(m jetstream.Msg) { handler(Delivery{m: m}) },
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			c.log.Warn(what, append(attrs, "err", err)...)
		}))
	if err != nil {
		return nil, err
	}
	return &Subscription{cc: cc}, nil
}

// ExternalEventKey is the external_events bucket key of event name (names
// may hold characters keys may not).
func ExternalEventKey(name string) string { return base64.RawURLEncoding.EncodeToString([]byte(name)) }
