// Package queuetest gives tests what the services never need: raw looks at
// the broker (stream and consumer state, stored messages, a key's history),
// faults (a deleted stream or consumer, a message published behind taskwire's
// back) and clients with chosen credentials. It lives under queue because
// only queue imports nats.go and its jetstream package (internal/layering
// checks test files too): a test of another package uses these helpers
// instead of importing them.
//
// The helpers take the *nats.Conn a test already has (queue.Client.Conn,
// natstest.Connect) and make a JetStream context per call: they are for
// tests, not hot paths.
package queuetest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/taskwire/taskwire/queue"
)

// The broker's own types, named here so a test can spell them without
// importing nats.go.
type (
	// StreamInfo is a stream's configuration and state.
	StreamInfo = jetstream.StreamInfo
	// ConsumerInfo is a consumer's configuration and counts.
	ConsumerInfo = jetstream.ConsumerInfo
	// RawStreamMsg is a message as the stream stores it.
	RawStreamMsg = jetstream.RawStreamMsg
	// KeyValueEntry is one revision of a key.
	KeyValueEntry = jetstream.KeyValueEntry
	// Header is a message's headers.
	Header = nats.Header
)

// ErrPermissionViolation is the error the server reports (asynchronously,
// see [ConnOpts].OnAsyncError) for a publish or subscribe it refused.
var ErrPermissionViolation = nats.ErrPermissionViolation

func js(nc *nats.Conn) jetstream.JetStream {
	j, err := jetstream.New(nc)
	if err != nil {
		// jetstream.New fails only on a nil connection.
		panic(fmt.Sprintf("queuetest: %v", err))
	}
	return j
}

// ConnOpts are the credentials and behaviour of a test's own client.
type ConnOpts struct {
	User, Password string
	// CredsFile is a NATS credentials (JWT + nkey) file.
	CredsFile string
	// TLSCA, TLSCert and TLSKey are PEM files: roots to verify the
	// server, and a client certificate.
	TLSCA, TLSCert, TLSKey string
	// InboxPrefix replaces "_INBOX" for reply subjects.
	InboxPrefix string
	// Timeout bounds the connect. Default 2s.
	Timeout time.Duration
	// OnAsyncError, when set, gets the errors the server reports
	// asynchronously (a refused subscription or publish:
	// [ErrPermissionViolation]).
	OnAsyncError func(error)
}

// Connect connects to url once (no retry, no reconnect wait at start):
// a test sees whether these credentials get in. The caller closes the
// connection.
func Connect(url string, o ConnOpts) (*nats.Conn, error) {
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Second
	}
	opts := []nats.Option{nats.Timeout(o.Timeout)}
	if o.User != "" || o.Password != "" {
		opts = append(opts, nats.UserInfo(o.User, o.Password))
	}
	if o.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(o.CredsFile))
	}
	if o.TLSCA != "" {
		opts = append(opts, nats.RootCAs(o.TLSCA))
	}
	if o.TLSCert != "" || o.TLSKey != "" {
		opts = append(opts, nats.ClientCert(o.TLSCert, o.TLSKey))
	}
	if o.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(o.InboxPrefix))
	}
	if o.OnAsyncError != nil {
		opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { o.OnAsyncError(err) }))
	}
	return nats.Connect(url, opts...)
}

// Request sends a core NATS request and returns the reply's data.
func Request(nc *nats.Conn, subject string, data []byte, timeout time.Duration) ([]byte, error) {
	m, err := nc.Request(subject, data, timeout)
	if err != nil {
		return nil, err
	}
	return m.Data, nil
}

// Msg is a core NATS message a [Subscribe] handler gets.
type Msg struct {
	Subject string
	// Reply is the subject a request's answer goes to ("" for none).
	Reply  string
	Data   []byte
	Header Header
}

// Subscribe calls fn, in the connection's delivery goroutine, with each
// core NATS message on subject (wildcards allowed) until stop is called.
func Subscribe(nc *nats.Conn, subject string, fn func(Msg)) (stop func(), err error) {
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) { fn(Msg{Subject: m.Subject, Reply: m.Reply, Data: m.Data, Header: m.Header}) })
	if err != nil {
		return nil, err
	}
	return func() { _ = sub.Unsubscribe() }, nil
}

// Publish publishes data on a stream's subject with a Nats-Msg-Id (the
// streams de-duplicate on it), as the services' own publishes do.
func Publish(ctx context.Context, nc *nats.Conn, subject string, data []byte, msgID string) error {
	_, err := js(nc).Publish(ctx, subject, data, jetstream.WithMsgID(msgID))
	return err
}

// PublishMany publishes n messages, msg(i) giving each one's subject, data
// and Nats-Msg-Id, without waiting for each acknowledgement, and returns
// once all are acknowledged (or ctx is done).
func PublishMany(ctx context.Context, nc *nats.Conn, n int, msg func(i int) (subject string, data []byte, msgID string)) error {
	j := js(nc)
	futures := make([]jetstream.PubAckFuture, 0, n)
	for i := range n {
		subject, data, id := msg(i)
		f, err := j.PublishAsync(subject, data, jetstream.WithMsgID(id))
		if err != nil {
			return err
		}
		futures = append(futures, f)
	}
	select {
	case <-j.PublishAsyncComplete():
	case <-ctx.Done():
		return ctx.Err()
	}
	for _, f := range futures {
		select {
		case err := <-f.Err():
			return err
		default:
		}
	}
	return nil
}

// Next pulls one message from cons, waiting up to wait for it; the
// error is [queue.ErrTimeout] when none came.
func Next(cons queue.Consumer, wait time.Duration) (queue.Delivery, error) {
	b, err := cons.Fetch(1, wait)
	if err != nil {
		return queue.Delivery{}, err
	}
	for d := range b.All() {
		return d, nil
	}
	if err := b.Err(); err != nil && !errors.Is(err, queue.ErrNoMessages) {
		return queue.Delivery{}, err
	}
	return queue.Delivery{}, queue.ErrTimeout
}

// Stream is a stream's configuration and state (the key-value bucket B is
// the stream "KV_B").
func Stream(ctx context.Context, nc *nats.Conn, name string) (*StreamInfo, error) {
	s, err := js(nc).Stream(ctx, name)
	if err != nil {
		return nil, err
	}
	return s.Info(ctx)
}

// Streams are every stream's configuration and state, by name (buckets
// included, as "KV_<bucket>").
func Streams(ctx context.Context, nc *nats.Conn) (map[string]*StreamInfo, error) {
	out := map[string]*StreamInfo{}
	l := js(nc).ListStreams(ctx)
	for info := range l.Info() {
		out[info.Config.Name] = info
	}
	return out, l.Err()
}

// StreamMsgs are the messages a stream stores, oldest first.
func StreamMsgs(ctx context.Context, nc *nats.Conn, name string) ([]*RawStreamMsg, error) {
	s, err := js(nc).Stream(ctx, name)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	var out []*RawStreamMsg
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // deleted from the middle
		}
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// LastMsg is the newest message a stream stores on subject.
func LastMsg(ctx context.Context, nc *nats.Conn, stream, subject string) (*RawStreamMsg, error) {
	s, err := js(nc).Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	return s.GetLastMsgForSubject(ctx, subject)
}

// DeleteStream deletes a stream: a fault taskwire must survive or report.
func DeleteStream(ctx context.Context, nc *nats.Conn, name string) error {
	return js(nc).DeleteStream(ctx, name)
}

// Consumer is a durable consumer's configuration and counts.
func Consumer(ctx context.Context, nc *nats.Conn, stream, name string) (*ConsumerInfo, error) {
	c, err := js(nc).Consumer(ctx, stream, name)
	if err != nil {
		return nil, err
	}
	return c.Info(ctx)
}

// ConsumerOf is cons's configuration and counts.
func ConsumerOf(ctx context.Context, cons queue.Consumer) (*ConsumerInfo, error) {
	return cons.JetStream().Info(ctx)
}

// DeleteConsumer deletes a durable consumer: a fault the services must
// recover from (they make it again).
func DeleteConsumer(ctx context.Context, nc *nats.Conn, stream, name string) error {
	return js(nc).DeleteConsumer(ctx, stream, name)
}

// History is every revision the bucket keeps of key, oldest first.
func History(ctx context.Context, nc *nats.Conn, bucket, key string) ([]KeyValueEntry, error) {
	kv, err := js(nc).KeyValue(ctx, bucket)
	if err != nil {
		return nil, err
	}
	return kv.History(ctx, key)
}
