package queuetest_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/goleak"

	"github.com/taskwire/taskwire/internal/natstest"
	"github.com/taskwire/taskwire/queue"
	"github.com/taskwire/taskwire/queue/queuetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Each helper against a real server: what one writes, the others see.
func TestHelpers(t *testing.T) {
	srv := natstest.RunServer(t)
	nc := natstest.Connect(t, srv)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	qc, err := queue.New(ctx, nc, queue.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}

	// A raw publish is de-duplicated on its id, and the consumer gets it once.
	for range 2 {
		if err := queuetest.Publish(ctx, nc, queue.ActivitySubject("q"), []byte("one"), "id-1"); err != nil {
			t.Fatal(err)
		}
	}
	if err := queuetest.PublishMany(ctx, nc, 3, func(i int) (string, []byte, string) {
		return queue.ActivitySubject("q"), []byte{'a' + byte(i)}, string(rune('a' + i))
	}); err != nil {
		t.Fatal(err)
	}
	info, err := queuetest.Stream(ctx, nc, queue.StreamActivities)
	if err != nil || info.State.Msgs != 4 {
		t.Fatalf("stream %+v, %v: want 4 messages", info, err)
	}
	msgs, err := queuetest.StreamMsgs(ctx, nc, queue.StreamActivities)
	if err != nil || len(msgs) != 4 || string(msgs[0].Data) != "one" {
		t.Fatalf("stream messages %d, %v", len(msgs), err)
	}
	last, err := queuetest.LastMsg(ctx, nc, queue.StreamActivities, queue.ActivitySubject("q"))
	if err != nil || string(last.Data) != "c" {
		t.Fatalf("last message %v, %v: want c", last, err)
	}
	streams, err := queuetest.Streams(ctx, nc)
	if err != nil || streams[queue.StreamActivities] == nil || streams["KV_"+queue.BucketTaskInstances] == nil {
		t.Fatalf("streams %v, %v", streams, err)
	}

	cons, err := qc.ActivityConsumer(ctx, "q")
	if err != nil {
		t.Fatal(err)
	}
	d, err := queuetest.Next(cons, 5*time.Second)
	if err != nil || !bytes.Equal(d.Data(), []byte("one")) {
		t.Fatalf("next %q, %v: want one", d.Data(), err)
	}
	if err := d.Ack(); err != nil {
		t.Fatal(err)
	}
	ci, err := queuetest.ConsumerOf(ctx, cons)
	if err != nil || ci.NumPending != 3 {
		t.Fatalf("consumer %+v, %v: want 3 pending", ci, err)
	}
	if err := queuetest.DeleteConsumer(ctx, nc, queue.StreamActivities, queue.ActivityConsumerName("q")); err != nil {
		t.Fatal(err)
	}
	if _, err := queuetest.Consumer(ctx, nc, queue.StreamActivities, queue.ActivityConsumerName("q")); err == nil {
		t.Error("the deleted consumer is still there")
	}
	// An empty queue's pull ends with ErrTimeout.
	empty, err := qc.ActivityConsumer(ctx, "empty")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := queuetest.Next(empty, 100*time.Millisecond); !errors.Is(err, queue.ErrTimeout) {
		t.Errorf("next on an empty queue: %v, want queue.ErrTimeout", err)
	}

	// A key's history, oldest first.
	b := qc.Bucket(queue.BucketTaskInstances)
	for _, v := range []string{"v1", "v2"} {
		if _, err := b.Put(ctx, "k", []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	hist, err := queuetest.History(ctx, nc, queue.BucketTaskInstances, "k")
	if err != nil || len(hist) != 2 || string(hist[0].Value()) != "v1" {
		t.Fatalf("history %d, %v", len(hist), err)
	}

	// Core NATS: a subscription sees a request; Request gets its reply.
	got := make(chan queuetest.Msg, 1)
	stop, err := queuetest.Subscribe(nc, "svc.echo", func(m queuetest.Msg) {
		got <- m
		_ = nc.Publish(m.Reply, m.Data)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if reply, err := queuetest.Request(nc, "svc.echo", []byte("ping"), 5*time.Second); err != nil || string(reply) != "ping" {
		t.Fatalf("request: %q, %v", reply, err)
	}
	if m := <-got; m.Subject != "svc.echo" {
		t.Errorf("subscription got %+v", m)
	}

	if err := queuetest.DeleteStream(ctx, nc, queue.StreamTriggers); err != nil {
		t.Fatal(err)
	}
	if _, err := queuetest.Stream(ctx, nc, queue.StreamTriggers); err == nil {
		t.Error("the deleted stream is still there")
	}
}

// Connect gets in with the right password only.
func TestConnect(t *testing.T) {
	srv := natstest.RunServerWith(t, func(o *server.Options) { o.Username, o.Password = "u", "p" })
	if nc, err := queuetest.Connect(srv.ClientURL(), queuetest.ConnOpts{User: "u", Password: "wrong"}); err == nil {
		nc.Close()
		t.Error("a wrong password got in")
	}
	nc, err := queuetest.Connect(srv.ClientURL(), queuetest.ConnOpts{User: "u", Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
}
