package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// A pull ends on the server's word (a 408 at its expiry, a 404, a 409),
// or when its batch is full, never on a client-side timer, except two
// backstops: a reconnect, after which the server has forgotten the
// request, and pullBackstop past its expiry, for a status that never came.
const (
	pullBackstop       = 30 * time.Second
	pullReconnectCheck = 500 * time.Millisecond
)

// pullDrainTimeout bounds Close's wait for the pulls' subscriptions to
// drain.
const pullDrainTimeout = 5 * time.Second

// Puller pulls from one durable consumer without ever losing a delivery
// on the client's side.
//
// nats.go's Fetch subscribes a fresh inbox per pull request and
// unsubscribes when the client stops waiting: on its own timer (the
// request's expiry plus one second, one second for a no-wait pull), on
// missed heartbeats, or when the caller's context ends. A message the
// server delivered to the request just before is dropped unread: in the
// fetch's buffer that no one drains any more (when it races the timer),
// or arriving before the server has processed the unsubscribe. When the
// server is slow to take requests (its expiry clock starts when it takes
// one: 1,000 workers pulling from one consumer), the client's timer runs
// out first. The message stays unacknowledged until the consumer's
// AckWait sends it again: a task that starts 30 s late, once in some
// 16,000 (issue 17).
//
// A Puller's pull waits for the server's word that it ended, however late;
// and a pull the caller gives up on (its context ended) is drained, not
// dropped: its subscription ends on the server first, then every message
// that was already on its way is given back at once with a Nak. Giving up
// a pull ends its interest, so the server delivers nothing more to it (a
// message given back to a request that the server still held would come
// straight back to it, spending the activity's deliveries).
//
// One Fetch at a time. Create it with [Client.ActivityPuller] or
// [Client.TriggerPuller]; Close it once no Fetch is under way.
type Puller struct {
	nc      *nats.Conn
	subject string // the consumer's next-message API subject

	mu       sync.Mutex
	busy     bool
	closed   bool
	draining []<-chan nats.SubStatus // closed-status channels of the subscriptions draining
}

// pull is one Fetch's state, shared with its subscription's callback.
type pull struct {
	p        *Puller
	msgs     []*nats.Msg // deliveries and statuses not yet read, in order
	detached bool        // the Fetch is over: give back what comes
	signal   chan struct{}
}

// ActivityPuller returns a Puller of queue's activity consumer (see
// [Client.ActivityConsumer], which must exist for its pulls to succeed;
// it may be made anew while the Puller lives).
func (c *Client) ActivityPuller(queue string) (*Puller, error) {
	if err := ValidQueueName(queue); err != nil {
		return nil, fmt.Errorf("activity puller: %w", err)
	}
	return c.puller(StreamActivities, ActivityConsumerName(queue)), nil
}

// TriggerPuller returns a Puller of the triggerers' consumer (see
// [Client.TriggerConsumer]).
func (c *Client) TriggerPuller() *Puller {
	return c.puller(StreamTriggers, TriggerConsumerName)
}

func (c *Client) puller(stream, consumer string) *Puller {
	return &Puller{nc: c.nc, subject: "$JS.API.CONSUMER.MSG.NEXT." + stream + "." + consumer}
}

// isStatus reports whether m is a status message of a pull (a 404, a 408,
// a 409, a heartbeat) rather than a delivery.
func isStatus(m *nats.Msg) bool {
	return len(m.Data) == 0 && m.Header.Get("Status") != ""
}

// receive is the subscription's callback: it queues a message for the
// Fetch, or gives it back once the Fetch is over.
func (pl *pull) receive(m *nats.Msg) {
	pl.p.mu.Lock()
	if pl.detached {
		pl.p.mu.Unlock()
		if !isStatus(m) {
			_ = m.Nak()
		}
		return
	}
	pl.msgs = append(pl.msgs, m)
	pl.p.mu.Unlock()
	select {
	case pl.signal <- struct{}{}:
	default:
	}
}

// pullRequest is JetStream's next-message request.
type pullRequest struct {
	Batch   int           `json:"batch"`
	Expires time.Duration `json:"expires,omitempty"`
	NoWait  bool          `json:"no_wait,omitempty"`
}

// Fetch runs one pull request for up to n messages, waiting up to wait for
// them on the server (0: only those there now). Range over the batch's All
// once, then check its Err. The pull ends when the server says so (however
// late), when n messages came, or when ctx ends: then what was delivered
// and not yielded is given back (Nak) at once.
func (p *Puller) Fetch(ctx context.Context, n int, wait time.Duration) (*Batch, error) {
	if n < 1 {
		return nil, fmt.Errorf("fetch: batch %d < 1", n)
	}
	req := pullRequest{Batch: n, Expires: max(wait, 0), NoWait: wait <= 0}
	data, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	p.mu.Lock()
	switch {
	case p.closed:
		p.mu.Unlock()
		return nil, errors.New("fetch: puller closed")
	case p.busy:
		p.mu.Unlock()
		return nil, errors.New("fetch: a pull is under way")
	}
	p.busy = true
	p.mu.Unlock()
	pl := &pull{p: p, signal: make(chan struct{}, 1)}
	inbox := p.nc.NewInbox()
	sub, err := p.nc.Subscribe(inbox, pl.receive)
	if err == nil {
		// The callback only appends: never drop a delivery as a slow
		// consumer.
		err = sub.SetPendingLimits(-1, -1)
		if err == nil {
			err = p.nc.PublishRequest(p.subject, inbox, data)
		}
		if err != nil {
			p.end(pl, sub, false)
		}
	} else {
		p.mu.Lock()
		p.busy = false
		p.mu.Unlock()
	}
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	b := &Batch{}
	deadline := time.Now().Add(max(wait, 0) + pullBackstop)
	reconnects := p.nc.Stats().Reconnects
	b.seq = func(yield func(Delivery) bool) {
		over := false // the server ended the request, or its batch is full
		defer func() { p.end(pl, sub, over) }()
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		check := time.NewTicker(pullReconnectCheck)
		defer check.Stop()
		got := 0
		for ctx.Err() == nil {
			p.mu.Lock()
			msgs := pl.msgs
			pl.msgs = nil
			p.mu.Unlock()
			for i, m := range msgs {
				if isStatus(m) {
					if m.Header.Get("Status") == "100" {
						continue // an idle heartbeat
					}
					b.err, over = statusErr(m), true
					giveBack(msgs[i+1:])
					return
				}
				got++
				over = got == n
				if !yield(Delivery{n: m}) || over {
					giveBack(msgs[i+1:])
					return
				}
			}
			select {
			case <-pl.signal:
			case <-check.C:
				if p.nc.Stats().Reconnects != reconnects {
					return // the server forgot the request
				}
			case <-t.C:
				return
			case <-ctx.Done():
			}
		}
	}
	return b, nil
}

// end detaches pl and gives back what came and was not yielded. A request
// that is over on the server (over) has nothing more on its way: its
// subscription just ends. Another one is drained: the server forgets the
// request, and what was already on its way is given back too.
func (p *Puller) end(pl *pull, sub *nats.Subscription, over bool) {
	var closed <-chan nats.SubStatus
	if !over {
		closed = sub.StatusChanged(nats.SubscriptionClosed)
	}
	p.mu.Lock()
	rest := pl.msgs
	pl.msgs = nil
	pl.detached = true
	p.busy = false
	if over {
		_ = sub.Unsubscribe()
	} else if err := sub.Drain(); err == nil {
		p.draining = append(p.draining, closed)
	}
	// Forget the subscriptions done draining.
	live := p.draining[:0]
	for _, c := range p.draining {
		select {
		case <-c:
		default:
			live = append(live, c)
		}
	}
	clear(p.draining[len(live):])
	p.draining = live
	p.mu.Unlock()
	giveBack(rest)
}

// giveBack Naks the deliveries among msgs.
func giveBack(msgs []*nats.Msg) {
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

// Close stops the Puller and waits (a moment at most) for its pulls'
// subscriptions to finish draining. Call it when no Fetch is under way.
func (p *Puller) Close() error {
	p.mu.Lock()
	p.closed = true
	draining := p.draining
	p.draining = nil
	p.mu.Unlock()
	t := time.NewTimer(pullDrainTimeout)
	defer t.Stop()
	for _, c := range draining {
		select {
		case <-c:
		case <-t.C:
			return errors.New("close puller: deliveries still draining")
		}
	}
	return nil
}
