package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// HeaderReason is the header of a dead letter that says why it was
// dead-lettered.
const HeaderReason = "Taskwire-Reason"

// maxDeliveriesAdvisorySubject matches max-deliveries advisories of every
// consumer of ACTIVITIES.
const maxDeliveriesAdvisorySubject = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + StreamActivities + ".>"

// ActivityConsumerName is the durable consumer shared by the workers of queue.
func ActivityConsumerName(queue string) string { return activityConsumerPrefix + queue }

const activityConsumerPrefix = "queue-"

// PublishActivity publishes data on activity.<queue> with Nats-Msg-Id msgID,
// so a repeated publish within the duplicates window is stored once, and
// waits for the stream's acknowledgement.
func (c *Client) PublishActivity(ctx context.Context, queue, msgID string, data []byte) error {
	if err := ValidQueueName(queue); err != nil {
		return fmt.Errorf("publish activity %s: %w", msgID, err)
	}
	if msgID == "" {
		return fmt.Errorf("publish activity on %s: empty msg id", queue)
	}
	if !c.cfg.Bind {
		// The first activity this provisioning client (the executor) puts
		// on a queue sets the queue's consumer to its config: a worker may
		// have created it first, with its defaults.
		if _, ok := c.ownConsumers.Load(queue); !ok {
			if _, err := c.ActivityConsumer(ctx, queue); err != nil {
				return fmt.Errorf("publish activity %s: %w", msgID, err)
			}
			c.ownConsumers.Store(queue, true)
		}
	}
	if _, err := c.js.Publish(ctx, ActivitySubject(queue), data, jetstream.WithMsgID(msgID)); err != nil {
		return fmt.Errorf("publish activity %s on %s: %w", msgID, queue, err)
	}
	return nil
}

// PublishActivityAsync is [Client.PublishActivity] without waiting: the
// activity is sent when it returns, and wait (which must be called)
// blocks until the stream acknowledged it or ctx ends. Many may be sent
// before their acknowledgements are awaited, so a batch costs one round
// trip.
func (c *Client) PublishActivityAsync(ctx context.Context, queue, msgID string, data []byte) (wait func() error, err error) {
	if err := ValidQueueName(queue); err != nil {
		return nil, fmt.Errorf("publish activity %s: %w", msgID, err)
	}
	if msgID == "" {
		return nil, fmt.Errorf("publish activity on %s: empty msg id", queue)
	}
	if !c.cfg.Bind {
		if _, ok := c.ownConsumers.Load(queue); !ok {
			if _, err := c.ActivityConsumer(ctx, queue); err != nil {
				return nil, fmt.Errorf("publish activity %s: %w", msgID, err)
			}
			c.ownConsumers.Store(queue, true)
		}
	}
	f, err := c.js.PublishAsync(ActivitySubject(queue), data, jetstream.WithMsgID(msgID))
	if err != nil {
		return nil, fmt.Errorf("publish activity %s on %s: %w", msgID, queue, err)
	}
	return func() error {
		t := time.NewTimer(requestTimeoutDefault)
		defer t.Stop()
		select {
		case <-f.Ok():
			return nil
		case err := <-f.Err():
			return fmt.Errorf("publish activity %s on %s: %w", msgID, queue, err)
		case <-t.C:
			return fmt.Errorf("publish activity %s on %s: no acknowledgement within %v", msgID, queue, requestTimeoutDefault)
		case <-ctx.Done():
			return fmt.Errorf("publish activity %s on %s: %w", msgID, queue, ctx.Err())
		}
	}, nil
}

// ActivityConsumer creates or updates the durable pull consumer
// "queue-<queue>" on activity.<queue>, shared by all workers of queue. A
// bound client (Config.Bind) takes an existing consumer as it is, and
// makes a missing one (a new queue, or after a NATS restart lost it: its
// state is in memory) with the ack wait and max deliveries the executor
// provisioned last, which the ACTIVITIES stream carries, not its own.
func (c *Client) ActivityConsumer(ctx context.Context, queue string) (Consumer, error) {
	if err := ValidQueueName(queue); err != nil {
		return Consumer{}, fmt.Errorf("activity consumer: %w", err)
	}
	cons, err := c.consumer(ctx, StreamActivities, jetstream.ConsumerConfig{
		Durable:       ActivityConsumerName(queue),
		Description:   "taskwire workers of queue " + queue,
		FilterSubject: ActivitySubject(queue),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.cfg.ActivityAckWait,
		MaxDeliver:    c.cfg.ActivityMaxDeliver,
		MaxAckPending: activityMaxAckPending,
		// Every worker of the queue keeps one pull waiting on it: the
		// server's default (512) refused the pulls of the 513th worker on
		// ("Exceeded MaxWaiting"), which retried in a storm of warnings.
		MaxWaiting:    ActivityMaxWaiting,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		Replicas:      c.cfg.Replicas,
		// The consumer's state (what was delivered, acked) lives in
		// memory, not in a file the server rewrites up to 10 times a second
		// per consumer: with 100 busy queues those writes cost more than
		// the tasks (see README, Measured). Losing it costs nothing that
		// matters on a work-queue stream: acked activities are gone from
		// the stream, the others are delivered again, and …/run refuses a
		// second start. A server restart loses the consumer itself; the
		// workers make it again (see worker's pull loop).
		MemoryStorage: true,
	}, c.adoptActivitySettings)
	if err != nil {
		return Consumer{}, fmt.Errorf("activity consumer %s: %w", queue, err)
	}
	return Consumer{c: cons}, nil
}

// Bell is a queue's doorbell (see [BellSubject]): it rings after each
// activity for the queue is stored. Redeliveries (a Nak, an expired
// AckWait) ring no bell.
type Bell struct {
	c   chan struct{}
	seq atomic.Uint64
	sub *nats.Subscription
}

// C has a value, without blocking the ringer, whenever the bell has rung
// since it was last read: "there may be something to pull".
func (b *Bell) C() <-chan struct{} { return b.c }

// Seq is the highest stream sequence the bell has rung for: a ring for an
// activity already pulled can be told from a new one by it.
func (b *Bell) Seq() uint64 { return b.seq.Load() }

// Close unsubscribes.
func (b *Bell) Close() error { return b.sub.Unsubscribe() }

// Doorbell subscribes to queue's doorbell.
func (c *Client) Doorbell(queue string) (*Bell, error) {
	if err := ValidQueueName(queue); err != nil {
		return nil, fmt.Errorf("doorbell: %w", err)
	}
	b := &Bell{c: make(chan struct{}, 1)}
	sub, err := c.nc.Subscribe(BellSubject(queue), func(m *nats.Msg) {
		if seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64); err == nil {
			for cur := b.seq.Load(); seq > cur && !b.seq.CompareAndSwap(cur, seq); cur = b.seq.Load() {
			}
		}
		select {
		case b.c <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return nil, fmt.Errorf("doorbell of %s: %w", queue, err)
	}
	b.sub = sub
	return b, nil
}

// maxDeliveriesAdvisory is the part of JetStream's max_deliver advisory we
// read.
type maxDeliveriesAdvisory struct {
	Stream    string `json:"stream"`
	Consumer  string `json:"consumer"`
	StreamSeq uint64 `json:"stream_seq"`
}

// OnMaxDeliveries calls fn, from the subscription's goroutine, with the
// stream and stream sequence of every activity that exhausted its
// deliveries. With work-queue retention such an activity stays in the stream
// until [Client.DeleteActivity]; read it with [Client.GetActivityBySeq].
// Every subscriber receives every advisory. The returned func unsubscribes.
func (c *Client) OnMaxDeliveries(fn func(stream string, seq uint64)) (unsubscribe func(), err error) {
	sub, err := c.nc.Subscribe(maxDeliveriesAdvisorySubject, func(m *nats.Msg) {
		var adv maxDeliveriesAdvisory
		if err := json.Unmarshal(m.Data, &adv); err != nil {
			c.log.Warn("bad max deliveries advisory", "subject", m.Subject, "err", err)
			return
		}
		fn(adv.Stream, adv.StreamSeq)
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe max deliveries advisories: %w", err)
	}
	if err := c.nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("subscribe max deliveries advisories: %w", err)
	}
	return func() { _ = sub.Unsubscribe() }, nil
}

// StoredActivity is an activity as stored in the ACTIVITIES stream.
type StoredActivity struct {
	// Queue is the queue it was published to.
	Queue string
	// Data is the encoded activity.
	Data []byte
	// MsgID is the Nats-Msg-Id it was published with.
	MsgID string
}

// ErrMsgNotFound: no message is stored at that sequence.
var ErrMsgNotFound = jetstream.ErrMsgNotFound

// GetActivityBySeq reads the activity stored at stream sequence seq. It
// returns an error wrapping [ErrMsgNotFound] when there is none.
func (c *Client) GetActivityBySeq(ctx context.Context, seq uint64) (StoredActivity, error) {
	msg, err := c.stream(StreamActivities).GetMsg(ctx, seq)
	if err != nil {
		return StoredActivity{}, fmt.Errorf("get activity at seq %d: %w", seq, err)
	}
	return StoredActivity{Queue: strings.TrimPrefix(msg.Subject, "activity."), Data: msg.Data, MsgID: msg.Header.Get(jetstream.MsgIDHeader)}, nil
}

// DeleteActivity removes the activity stored at stream sequence seq.
func (c *Client) DeleteActivity(ctx context.Context, seq uint64) error {
	if err := c.stream(StreamActivities).DeleteMsg(ctx, seq); err != nil {
		return fmt.Errorf("delete activity at seq %d: %w", seq, err)
	}
	return nil
}

// PublishDeadLetter publishes data on deadletter.<queue> with the header
// Taskwire-Reason: reason and waits for the stream's acknowledgement.
func (c *Client) PublishDeadLetter(ctx context.Context, queue string, data []byte, reason string) error {
	if err := ValidQueueName(queue); err != nil {
		return fmt.Errorf("publish dead letter: %w", err)
	}
	msg := &nats.Msg{Subject: DeadLetterSubject(queue), Header: nats.Header{}, Data: data}
	msg.Header.Set(HeaderReason, strings.NewReplacer("\r", " ", "\n", " ").Replace(reason))
	if _, err := c.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("publish dead letter on %s: %w", queue, err)
	}
	return nil
}

// ActivityPending returns, per queue with a consumer, how many activities
// wait for a worker: the consumer's NumPending (not yet delivered) plus its
// NumAckPending (delivered but not yet handed off to a task, which includes
// those a stopping or draining worker gave back with a Nak and that wait
// for redelivery). One request for all queues.
func (c *Client) ActivityPending(ctx context.Context) (map[string]int, error) {
	lister := c.stream(StreamActivities).ListConsumers(ctx)
	out := map[string]int{}
	for info := range lister.Info() {
		if q, ok := strings.CutPrefix(info.Name, activityConsumerPrefix); ok {
			out[q] = int(info.NumPending) + info.NumAckPending
		}
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("list activity consumers: %w", err)
	}
	return out, nil
}

// Metadata of the ACTIVITIES stream: the executor's settings of the queues'
// consumers, for the workers (bound clients) that make a missing one.
const (
	activityAckWaitMetadata    = "taskwire_activity_ack_wait"
	activityMaxDeliverMetadata = "taskwire_activity_max_deliver"
)

// activityMetadata is the ACTIVITIES stream's metadata for c's settings.
func (c *Client) activityMetadata() map[string]string {
	return map[string]string{
		activityAckWaitMetadata:    c.cfg.ActivityAckWait.String(),
		activityMaxDeliverMetadata: strconv.Itoa(c.cfg.ActivityMaxDeliver),
	}
}

// adoptActivitySettings sets cc's ack wait and max deliveries to those the
// ACTIVITIES stream carries now (read afresh: the executor may have
// restarted with others since this client bound). A stream without them
// (an older executor's) or a failed read leaves cc as it is.
func (c *Client) adoptActivitySettings(ctx context.Context, cc *jetstream.ConsumerConfig) {
	s, err := c.js.Stream(ctx, StreamActivities)
	if err != nil {
		c.log.Warn("read the cluster's activity settings; making the consumer with this client's", "err", err,
			"ack_wait", cc.AckWait, "max_deliver", cc.MaxDeliver)
		return
	}
	md := s.CachedInfo().Config.Metadata
	if d, err := time.ParseDuration(md[activityAckWaitMetadata]); err == nil && d > 0 {
		cc.AckWait = d
	}
	if n, err := strconv.Atoi(md[activityMaxDeliverMetadata]); err == nil && n != 0 {
		cc.MaxDeliver = n
	}
}
