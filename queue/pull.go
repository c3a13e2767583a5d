package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// pullGiveUpMargin is how long past its expiry a pull waits for the
// server's word that it ended (a 408, a 404) before it ends anyway, as
// after a reconnect, when the server has forgotten the request.
const pullGiveUpMargin = 2 * time.Second

// pullDrainTimeout bounds Close's wait for the deliveries under way.
const pullDrainTimeout = 5 * time.Second

// Puller pulls from one durable consumer through one subscription that it
// keeps for its whole life, so that no delivery is ever lost on the
// client's side.
//
// nats.go's Fetch subscribes a fresh inbox per pull request and
// unsubscribes when the client stops waiting: on its own timer (the
// request's expiry plus one second, one second for a no-wait pull), on
// missed heartbeats, or when the caller's context ends. When the server
// is slow to take the request (its expiry clock starts when it takes it:
// 1,000 workers pulling from one consumer), it may deliver a message to the
// request after the client gave up: the message arrives for an inbox no
// one reads (or waits in the fetch's buffer that no one drains), and stays
// unacknowledged until the consumer's AckWait sends it again: a task that
// starts 30 s late, once in some 16,000 (issue 17). Here every request
// answers to the same subscription: a message delivered to a request the
// client no longer waits for is handed to the pull under way, or, when
// none is (or it is full), given back at once with a Nak.
//
// One Fetch at a time. Create it with [Client.ActivityPuller] or
// [Client.TriggerPuller]; Close it once no Fetch is under way.
type Puller struct {
	nc      *nats.Conn
	subject string // the consumer's next-message API subject
	inbox   string // requests reply to inbox.<n>
	sub     *nats.Subscription

	mu     sync.Mutex
	cur    *pull // the Fetch under way, nil when none
	closed bool

	reqs uint64 // requests sent (the reply subject's last token)
}

// pull is one Fetch's state, shared with the subscription's callback.
type pull struct {
	reply  string
	msgs   []*nats.Msg // user messages and this request's status, in order
	signal chan struct{}
}

// ActivityPuller returns a Puller of queue's activity consumer (see
// [Client.ActivityConsumer], which must exist for its pulls to succeed;
// it may be made anew while the Puller lives).
func (c *Client) ActivityPuller(queue string) (*Puller, error) {
	if err := ValidQueueName(queue); err != nil {
		return nil, fmt.Errorf("activity puller: %w", err)
	}
	return c.puller(StreamActivities, ActivityConsumerName(queue))
}

// TriggerPuller returns a Puller of the triggerers' consumer (see
// [Client.TriggerConsumer]).
func (c *Client) TriggerPuller() (*Puller, error) {
	return c.puller(StreamTriggers, TriggerConsumerName)
}

func (c *Client) puller(stream, consumer string) (*Puller, error) {
	p := &Puller{
		nc:      c.nc,
		subject: "$JS.API.CONSUMER.MSG.NEXT." + stream + "." + consumer,
		inbox:   c.nc.NewInbox(),
	}
	sub, err := c.nc.Subscribe(p.inbox+".*", p.receive)
	if err != nil {
		return nil, fmt.Errorf("puller of %s: %w", consumer, err)
	}
	// The callback only appends: never drop a delivery as a slow consumer.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("puller of %s: %w", consumer, err)
	}
	p.sub = sub
	return p, nil
}

// isStatus reports whether m is a status message of a pull (a 404, a 408,
// a 409, a heartbeat) rather than a delivery.
func isStatus(m *nats.Msg) bool {
	return len(m.Data) == 0 && m.Header.Get("Status") != ""
}

// receive is the subscription's callback: it hands a delivery to the
// Fetch under way, and gives it back when there is none.
func (p *Puller) receive(m *nats.Msg) {
	status := isStatus(m)
	p.mu.Lock()
	cur := p.cur
	if cur != nil && (!status || m.Subject == cur.reply) {
		cur.msgs = append(cur.msgs, m)
		p.mu.Unlock()
		select {
		case cur.signal <- struct{}{}:
		default:
		}
		return
	}
	p.mu.Unlock()
	if !status {
		// Delivered to a request no Fetch waits for any more.
		_ = m.Nak()
	}
	// A status of an earlier request: it has ended, nothing to do.
}

// pullRequest is JetStream's next-message request.
type pullRequest struct {
	Batch   int           `json:"batch"`
	Expires time.Duration `json:"expires,omitempty"`
	NoWait  bool          `json:"no_wait,omitempty"`
}

// Fetch runs one pull request for up to n messages, waiting up to wait for
// them on the server (0: only those there now). Range over the batch's All,
// then check its Err; the pull ends when the server says so, when n
// messages came, or when ctx ends. Deliveries that arrive for it after
// that are given back (Nak) without delay.
func (p *Puller) Fetch(ctx context.Context, n int, wait time.Duration) (*Batch, error) {
	if n < 1 {
		return nil, fmt.Errorf("fetch: batch %d < 1", n)
	}
	req := pullRequest{Batch: n, Expires: wait, NoWait: wait <= 0}
	if wait <= 0 {
		req.Expires = 0
	}
	data, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	p.reqs++
	cur := &pull{reply: p.inbox + "." + strconv.FormatUint(p.reqs, 10), signal: make(chan struct{}, 1)}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errors.New("fetch: puller closed")
	}
	if p.cur != nil {
		p.mu.Unlock()
		return nil, errors.New("fetch: a pull is under way")
	}
	p.cur = cur
	p.mu.Unlock()
	if err := p.nc.PublishRequest(p.subject, cur.reply, data); err != nil {
		p.end(cur)
		return nil, fmt.Errorf("fetch: %w", err)
	}
	b := &Batch{}
	deadline := time.Now().Add(max(wait, 0) + pullGiveUpMargin)
	b.seq = func(yield func(Delivery) bool) {
		defer p.end(cur)
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		got := 0
		for got < n {
			p.mu.Lock()
			msgs := cur.msgs
			cur.msgs = nil
			p.mu.Unlock()
			for i, m := range msgs {
				if isStatus(m) {
					if m.Header.Get("Status") == "100" {
						continue // an idle heartbeat
					}
					b.err = statusErr(m)
					p.giveBack(msgs[i+1:])
					return
				}
				got++
				if !yield(Delivery{n: m}) {
					p.giveBack(msgs[i+1:])
					return
				}
				if got == n {
					p.giveBack(msgs[i+1:])
					return
				}
			}
			select {
			case <-cur.signal:
			case <-t.C:
				return
			case <-ctx.Done():
				return
			}
		}
	}
	return b, nil
}

// end detaches cur: what is delivered from now on is given back, and so
// is what came for it and was not yielded.
func (p *Puller) end(cur *pull) {
	p.mu.Lock()
	rest := cur.msgs
	cur.msgs = nil
	if p.cur == cur {
		p.cur = nil
	}
	p.mu.Unlock()
	p.giveBack(rest)
}

// giveBack Naks the deliveries among msgs.
func (*Puller) giveBack(msgs []*nats.Msg) {
	for _, m := range msgs {
		if !isStatus(m) {
			_ = m.Nak()
		}
	}
}

// statusErr is the error of a pull's final status: nil for the ordinary
// ends (no messages, the request expired).
func statusErr(m *nats.Msg) error {
	switch code := m.Header.Get("Status"); code {
	case "404", "408":
		return nil
	case "503":
		return fmt.Errorf("pull: %w", nats.ErrNoResponders)
	default:
		return fmt.Errorf("pull: %s %s", code, m.Header.Get("Description"))
	}
}

// Close stops the Puller: it unsubscribes and waits (a moment at most) for
// the deliveries already sent to it, which it gives back. Call it when no
// Fetch is under way.
func (p *Puller) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	closed := p.sub.StatusChanged(nats.SubscriptionClosed)
	if err := p.sub.Drain(); err != nil {
		return fmt.Errorf("close puller: %w", err)
	}
	select {
	case <-closed:
	case <-time.After(pullDrainTimeout):
		return errors.New("close puller: deliveries still draining")
	}
	return nil
}
