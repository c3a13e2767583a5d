package queue

import (
	"context"
	"fmt"
	"iter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Delivery is one message delivered by a durable consumer (an activity, a
// trigger, a fired event, a due timer). Settle it with JetStream's words:
// Ack (done), Nak (deliver again now), NakWithDelay (again after a delay),
// InProgress (still working: restart the ack wait) or Term (never again).
// A Delivery is a small value: pass it by value.
type Delivery struct {
	m jetstream.Msg
	// n is the message when it came through a [Puller] (m is nil then).
	n *nats.Msg
}

// DeliveryInfo is what the server says about a delivery.
type DeliveryInfo struct {
	// Delivered is how many times the message has been delivered,
	// this delivery included.
	Delivered uint64
	// Pending is how many messages of the consumer wait after this one.
	Pending uint64
	// StreamSeq is the message's sequence in its stream.
	StreamSeq uint64
}

// Data is the message's payload.
func (d Delivery) Data() []byte {
	if d.n != nil {
		return d.n.Data
	}
	return d.m.Data()
}

// Subject is the subject the message was published on.
func (d Delivery) Subject() string {
	if d.n != nil {
		return d.n.Subject
	}
	return d.m.Subject()
}

// Info parses the delivery's metadata; ok is false when it has none (a
// message that did not come from a consumer).
func (d Delivery) Info() (info DeliveryInfo, ok bool) {
	if d.n != nil {
		md, err := d.n.Metadata()
		if err != nil {
			return DeliveryInfo{}, false
		}
		return DeliveryInfo{Delivered: md.NumDelivered, Pending: md.NumPending, StreamSeq: md.Sequence.Stream}, true
	}
	md, err := d.m.Metadata()
	if err != nil {
		return DeliveryInfo{}, false
	}
	return DeliveryInfo{Delivered: md.NumDelivered, Pending: md.NumPending, StreamSeq: md.Sequence.Stream}, true
}

// Ack settles the message as done.
func (d Delivery) Ack() error {
	if d.n != nil {
		return d.n.Ack()
	}
	return d.m.Ack()
}

// DoubleAck settles the message as done and waits for the server to
// confirm it.
func (d Delivery) DoubleAck(ctx context.Context) error {
	if d.n != nil {
		return d.n.AckSync(nats.Context(ctx))
	}
	return d.m.DoubleAck(ctx)
}

// Nak asks for the message to be delivered again at once.
func (d Delivery) Nak() error {
	if d.n != nil {
		return d.n.Nak()
	}
	return d.m.Nak()
}

// NakWithDelay asks for the message to be delivered again after delay.
func (d Delivery) NakWithDelay(delay time.Duration) error {
	if d.n != nil {
		return d.n.NakWithDelay(delay)
	}
	return d.m.NakWithDelay(delay)
}

// InProgress restarts the message's ack wait.
func (d Delivery) InProgress() error {
	if d.n != nil {
		return d.n.InProgress()
	}
	return d.m.InProgress()
}

// Term settles the message as never to be delivered again.
func (d Delivery) Term() error {
	if d.n != nil {
		return d.n.Term()
	}
	return d.m.Term()
}

// Consumer is a durable pull consumer of one of taskwire's streams (see
// [Client.ActivityConsumer], [Client.TriggerConsumer]). It is safe for
// concurrent use.
type Consumer struct {
	c jetstream.Consumer
}

// AckWait is the consumer's ack wait as last read from the server (0 when
// unknown).
func (c Consumer) AckWait() time.Duration {
	if info := c.c.CachedInfo(); info != nil {
		return info.Config.AckWait
	}
	return 0
}

// Fetch runs one pull request for up to n messages, waiting up to wait
// for them on the server (0: only those there now). The request ends when
// the server says so, never by the client giving up first. Range over
// the batch's All, then check its Err.
func (c Consumer) Fetch(n int, wait time.Duration) (*Batch, error) {
	var (
		b   jetstream.MessageBatch
		err error
	)
	if wait == 0 {
		b, err = c.c.FetchNoWait(n)
	} else {
		b, err = c.c.Fetch(n, jetstream.FetchMaxWait(wait))
	}
	if err != nil {
		return nil, err
	}
	return &Batch{b: b}, nil
}

// Batch is the messages of one pull request (see [Consumer.Fetch]).
type Batch struct {
	b jetstream.MessageBatch
	// seq and err are a [Puller]'s pull (b is nil then).
	seq iter.Seq[Delivery]
	err error
}

// All yields the batch's messages as they arrive, until the pull ends.
func (b *Batch) All() iter.Seq[Delivery] {
	if b.seq != nil {
		return b.seq
	}
	return func(yield func(Delivery) bool) {
		for m := range b.b.Messages() {
			if !yield(Delivery{m: m}) {
				return
			}
		}
	}
}

// Err is why the pull ended early, if it did ([ErrNoMessages]: the
// server had none to give).
func (b *Batch) Err() error {
	if b.seq != nil {
		return b.err
	}
	return b.b.Error()
}

// ErrNoMessages is a batch's Err when the server had no message for it.
var ErrNoMessages = jetstream.ErrNoMessages

// Subscription is a running push of deliveries to a handler (see
// [Client.ConsumeTimers], [Client.ConsumeEvents]).
type Subscription struct {
	cc jetstream.ConsumeContext
}

// Stop stops the deliveries; a handler running may still finish.
func (s *Subscription) Stop() { s.cc.Stop() }

// JetStream is the consumer as nats.go's jetstream sees it, for tests that
// inspect or pull directly. Services use the methods above: the layering
// test (internal/layering) keeps them from using it.
func (c Consumer) JetStream() jetstream.Consumer { return c.c }

// ErrTimeout is a batch's Err when its pull ended with fewer messages than
// asked for because its wait ran out.
var ErrTimeout = nats.ErrTimeout

// Deliveries is how many deliveries the consumer has made, redeliveries
// included (the server's consumer sequence).
func (c Consumer) Deliveries(ctx context.Context) (uint64, error) {
	info, err := c.c.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("consumer info: %w", err)
	}
	return info.Delivered.Consumer, nil
}
