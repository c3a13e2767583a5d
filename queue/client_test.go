package queue_test

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/taskwire/taskwire/internal/natstest"
	"github.com/taskwire/taskwire/queue"
)

func TestNewIsIdempotent(t *testing.T) {
	t.Parallel()
	s := natstest.RunServer(t)
	ctx := testContext(t)
	c1, err := queue.New(ctx, natstest.Connect(t, s), queue.Config{Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("first New: %v", err)
	}
	if _, err := c1.Bucket(queue.BucketXCom).Put(ctx, "k", []byte("v")); err != nil {
		t.Fatalf("put: %v", err)
	}
	// A second process provisioning the same layout, then a restart of the
	// first one.
	if _, err := queue.New(ctx, natstest.Connect(t, s), queue.Config{Logger: testLogger(t)}); err != nil {
		t.Fatalf("second New: %v", err)
	}
	c3, err := queue.New(ctx, c1.Conn(), queue.Config{Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("third New: %v", err)
	}
	e, err := c3.Bucket(queue.BucketXCom).Get(ctx, "k")
	if err != nil || string(e.Value()) != "v" {
		t.Fatalf("get after re-provisioning = %v, %v; want v", e, err)
	}

	var names []string
	for name := range c3.JetStream().StreamNames(ctx).Name() {
		names = append(names, name)
	}
	for _, want := range []string{queue.StreamActivities, queue.StreamTriggers, queue.StreamEvents,
		queue.StreamLogs, queue.StreamTimers, queue.StreamDeadLetter,
		"KV_" + queue.BucketTaskInstances, "KV_" + queue.BucketXCom, "KV_" + queue.BucketVariables,
		"KV_" + queue.BucketConnections, "KV_" + queue.BucketConfig} {
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Errorf("stream %s missing; have %v", want, names)
		}
	}
	st, err := c3.JetStream().Stream(ctx, queue.StreamActivities)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	if got := st.CachedInfo().Config; got.Retention != jetstream.WorkQueuePolicy || got.Duplicates != 2*time.Minute {
		t.Errorf("ACTIVITIES retention %v duplicates %v, want workqueue 2m", got.Retention, got.Duplicates)
	}
	kvs, err := c3.Bucket(queue.BucketTaskInstances).JetStream().Status(ctx)
	if err != nil {
		t.Fatalf("kv status: %v", err)
	}
	if kvs.History() != 5 {
		t.Errorf("task_instances history = %d, want 5", kvs.History())
	}
}

func TestKVUnknownBucketPanics(t *testing.T) {
	t.Parallel()
	c := newClient(t, queue.Config{})
	defer func() {
		if recover() == nil {
			t.Fatal("KV(unknown) did not panic")
		}
	}()
	c.Bucket("nope")
}

func TestPublishActivityDeduplicates(t *testing.T) {
	t.Parallel()
	c := newClient(t, queue.Config{})
	ctx := testContext(t)
	for range 2 {
		if err := c.PublishActivity(ctx, "default", "act-1", []byte("payload")); err != nil {
			t.Fatalf("PublishActivity: %v", err)
		}
	}
	if err := c.PublishActivity(ctx, "default", "act-2", []byte("payload")); err != nil {
		t.Fatalf("PublishActivity: %v", err)
	}
	st, err := c.JetStream().Stream(ctx, queue.StreamActivities)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatalf("info: %v", err)
	}
	if got := info.State.Msgs; got != 2 {
		t.Fatalf("stored %d messages, want 2", got)
	}
	if err := c.PublishActivity(ctx, "Bad.Queue", "x", nil); !errors.Is(err, queue.ErrInvalidQueue) {
		t.Fatalf("PublishActivity on a bad queue = %v, want ErrInvalidQueue", err)
	}
}

func TestActivityConsumerGetsOnlyItsQueue(t *testing.T) {
	t.Parallel()
	c := newClient(t, queue.Config{})
	ctx := testContext(t)
	for _, q := range []string{"alpha", "beta", "alpha"} {
		if err := c.PublishActivity(ctx, q, q+"-"+time.Now().Format(time.RFC3339Nano), []byte(q)); err != nil {
			t.Fatalf("PublishActivity: %v", err)
		}
	}
	cons, err := c.ActivityConsumer(ctx, "alpha")
	if err != nil {
		t.Fatalf("ActivityConsumer: %v", err)
	}
	// Idempotent: a second worker of the same queue.
	if _, err := c.ActivityConsumer(ctx, "alpha"); err != nil {
		t.Fatalf("second ActivityConsumer: %v", err)
	}
	info := cons.JetStream().CachedInfo()
	if info.Name != "queue-alpha" || info.Config.FilterSubject != "activity.alpha" ||
		info.Config.AckPolicy != jetstream.AckExplicitPolicy || info.Config.MaxDeliver != 5 ||
		info.Config.AckWait != queue.ActivityAckWaitDefault {
		t.Fatalf("consumer config = %+v", info.Config)
	}
	batch, err := cons.JetStream().Fetch(10, jetstream.FetchMaxWait(500*time.Millisecond))
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	var got []string
	for m := range batch.Messages() {
		got = append(got, m.Subject())
		if err := m.Ack(); err != nil {
			t.Fatalf("Ack: %v", err)
		}
	}
	if batch.Error() != nil {
		t.Fatalf("fetch: %v", batch.Error())
	}
	if len(got) != 2 || got[0] != "activity.alpha" || got[1] != "activity.alpha" {
		t.Fatalf("alpha consumer got %v, want two activity.alpha", got)
	}
}

func TestMaxDeliveriesAdvisory(t *testing.T) {
	t.Parallel()
	c := newClient(t, queue.Config{ActivityMaxDeliver: 2, ActivityAckWait: time.Second})
	ctx := testContext(t)

	type exhausted struct {
		stream string
		seq    uint64
	}
	advisories := make(chan exhausted, 1)
	unsubscribe, err := c.OnMaxDeliveries(func(stream string, seq uint64) {
		select {
		case advisories <- exhausted{stream, seq}:
		default:
		}
	})
	if err != nil {
		t.Fatalf("OnMaxDeliveries: %v", err)
	}
	defer unsubscribe()

	if err := c.PublishActivity(ctx, "flaky", "act-1", []byte("poison")); err != nil {
		t.Fatalf("PublishActivity: %v", err)
	}
	cons, err := c.ActivityConsumer(ctx, "flaky")
	if err != nil {
		t.Fatalf("ActivityConsumer: %v", err)
	}
	var (
		mu         sync.Mutex
		deliveries int
	)
	cc, err := cons.JetStream().Consume(func(m jetstream.Msg) {
		mu.Lock()
		deliveries++
		mu.Unlock()
		_ = m.Nak()
	})
	if err != nil {
		t.Fatalf("Consume: %v", err)
	}
	defer cc.Stop()

	var adv exhausted
	select {
	case adv = <-advisories:
	case <-ctx.Done():
		t.Fatal("no max deliveries advisory")
	}
	mu.Lock()
	if deliveries != 2 {
		t.Errorf("delivered %d times, want 2", deliveries)
	}
	mu.Unlock()
	if adv.stream != queue.StreamActivities || adv.seq != 1 {
		t.Fatalf("advisory = %+v, want ACTIVITIES seq 1", adv)
	}
	msg, err := c.GetActivityBySeq(ctx, adv.seq)
	if err != nil {
		t.Fatalf("GetActivityBySeq: %v", err)
	}
	if string(msg.Data) != "poison" || msg.Queue != "flaky" || msg.MsgID != "act-1" {
		t.Fatalf("GetActivityBySeq = %+v", msg)
	}
	if err := c.PublishDeadLetter(ctx, "flaky", msg.Data, "max deliveries\nexceeded"); err != nil {
		t.Fatalf("PublishDeadLetter: %v", err)
	}
	if err := c.DeleteActivity(ctx, adv.seq); err != nil {
		t.Fatalf("DeleteActivity: %v", err)
	}
	if _, err := c.GetActivityBySeq(ctx, adv.seq); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Fatalf("GetActivityBySeq after delete = %v, want ErrMsgNotFound", err)
	}
	dl, err := c.JetStream().Stream(ctx, queue.StreamDeadLetter)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	got, err := dl.GetLastMsgForSubject(ctx, "deadletter.flaky")
	if err != nil {
		t.Fatalf("get dead letter: %v", err)
	}
	if string(got.Data) != "poison" || got.Header.Get(queue.HeaderReason) != "max deliveries exceeded" {
		t.Fatalf("dead letter = %q %v", got.Data, got.Header)
	}
}

// TestDoorbell: a queue's bell rings after each of its activities is
// stored (the stream sequence it names can be read at once), not for other
// queues' activities, and carries no payload.
func TestDoorbell(t *testing.T) {
	t.Parallel()
	c := newClient(t, queue.Config{})
	ctx := testContext(t)
	st, err := c.JetStream().Stream(ctx, queue.StreamActivities)
	if err != nil {
		t.Fatal(err)
	}
	bell, err := c.Doorbell("alpha")
	if err != nil {
		t.Fatalf("Doorbell: %v", err)
	}
	defer bell.Close()
	raw, err := c.Conn().SubscribeSync("bell.>")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Unsubscribe()
	if err := c.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		// Another queue's activity first: it must not ring alpha's bell.
		if err := c.PublishActivity(ctx, "beta", fmt.Sprintf("b-%d", i), []byte("b")); err != nil {
			t.Fatal(err)
		}
		if err := c.PublishActivity(ctx, "alpha", fmt.Sprintf("a-%d", i), []byte("payload")); err != nil {
			t.Fatal(err)
		}
		select {
		case <-bell.C():
		case <-ctx.Done():
			t.Fatalf("activity %d: no bell", i)
		}
		for _, want := range []string{"bell.beta", "bell.alpha"} {
			m, err := raw.NextMsg(testTimeout)
			if err != nil {
				t.Fatalf("activity %d: %s: %v", i, want, err)
			}
			if m.Subject != want || len(m.Data) != 0 {
				t.Fatalf("activity %d: bell %s with %d bytes, want %s, headers only", i, m.Subject, len(m.Data), want)
			}
			seq, err := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
			if err != nil {
				t.Fatalf("activity %d: bell headers %v: %v", i, m.Header, err)
			}
			stored, err := st.GetMsg(ctx, seq)
			if err != nil || stored.Subject != "activity."+strings.TrimPrefix(want, "bell.") {
				t.Fatalf("activity %d: %s rang for seq %d, stored %v, %v", i, want, seq, stored, err)
			}
			if want == "bell.alpha" && bell.Seq() != seq {
				t.Fatalf("activity %d: alpha's bell says seq %d, want %d", i, bell.Seq(), seq)
			}
		}
	}
	if _, err := c.Doorbell("Bad.Queue"); !errors.Is(err, queue.ErrInvalidQueue) {
		t.Fatalf("Doorbell of a bad queue = %v, want ErrInvalidQueue", err)
	}
}

// A bound client (a worker, a triggerer) never changes what the
// provisioning client (the executor) set: not the activity ack wait, not
// the stream replicas. When a worker creates a queue's consumer first, the
// executor's first activity on that queue sets it to the executor's config.
func TestBindKeepsTheExecutorsLayout(t *testing.T) {
	t.Parallel()
	s := natstest.RunServer(t)
	ctx := testContext(t)
	owner, err := queue.New(ctx, natstest.Connect(t, s), queue.Config{ActivityAckWait: 2 * time.Second, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := owner.ActivityConsumer(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	bound, err := queue.New(ctx, natstest.Connect(t, s), queue.Config{Bind: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ackWait := func(q string) time.Duration {
		t.Helper()
		cons, err := bound.ActivityConsumer(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		info, err := cons.JetStream().Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.Config.AckWait
	}
	if got := ackWait("a"); got != 2*time.Second {
		t.Errorf("ack wait after a bound client took the consumer: %s, want the executor's 2s", got)
	}
	// The worker came first on queue b: it makes the consumer with the
	// executor's settings, which the ACTIVITIES stream carries.
	if got := ackWait("b"); got != 2*time.Second {
		t.Errorf("ack wait of a consumer a bound client created: %s, want the executor's 2s", got)
	}
	if err := owner.PublishActivity(ctx, "b", "b-1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if got := ackWait("b"); got != 2*time.Second {
		t.Errorf("ack wait after the executor published on b: %s, want 2s", got)
	}
	// A bound client on an empty server creates what is missing.
	s2 := natstest.RunServer(t)
	if _, err := queue.New(ctx, natstest.Connect(t, s2), queue.Config{Bind: true, Logger: testLogger(t)}); err != nil {
		t.Fatalf("bind on an empty server: %v", err)
	}
}

// TestActivityConsumerMovesToMemory: a queue's consumer made with its state
// in a file (an earlier version) is made anew with its state in memory.
func TestActivityConsumerMovesToMemory(t *testing.T) {
	t.Parallel()
	c := newClient(t, queue.Config{})
	ctx := testContext(t)
	if _, err := c.JetStream().CreateConsumer(ctx, queue.StreamActivities, jetstream.ConsumerConfig{
		Durable: queue.ActivityConsumerName("old"), FilterSubject: queue.ActivitySubject("old"), AckPolicy: jetstream.AckExplicitPolicy,
	}); err != nil {
		t.Fatal(err)
	}
	cons, err := c.ActivityConsumer(ctx, "old")
	if err != nil {
		t.Fatalf("ActivityConsumer over a file-state consumer: %v", err)
	}
	if !cons.JetStream().CachedInfo().Config.MemoryStorage {
		t.Fatalf("consumer config = %+v, want memory storage", cons.JetStream().CachedInfo().Config)
	}
}

// A NATS restart loses the queues' consumers (their state is in memory);
// the workers make them again, and must make them with the cluster's ack
// wait and max deliveries, as the executor last provisioned them (read
// from the ACTIVITIES stream), not with their own defaults: a worker's 30 s
// ack wait on a cluster set to a shorter one delayed every redelivery.
func TestBoundClientRemakesTheConsumerWithTheClustersSettings(t *testing.T) {
	t.Parallel()
	opts := natstest.Options(t)
	s := natstest.Start(t, opts)
	opts.Port = natstest.Port(s)
	ctx := testContext(t)
	owner, err := queue.New(ctx, natstest.Connect(t, s), queue.Config{ActivityAckWait: 2 * time.Second, ActivityMaxDeliver: 7, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := owner.ActivityConsumer(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	bound, err := queue.New(ctx, natstest.Connect(t, s), queue.Config{Bind: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	// The executor restarts with another ack wait after the worker bound.
	if _, err := queue.New(ctx, natstest.Connect(t, s), queue.Config{ActivityAckWait: 3 * time.Second, ActivityMaxDeliver: 7, Logger: testLogger(t)}); err != nil {
		t.Fatal(err)
	}

	natstest.Stop(s)
	natstest.Start(t, opts)
	var cons queue.Consumer
	deadline := time.Now().Add(20 * time.Second)
	for {
		if cons, err = bound.ActivityConsumer(ctx, "a"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("make the consumer after the restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cfg := cons.JetStream().CachedInfo().Config
	if cfg.AckWait != 3*time.Second || cfg.MaxDeliver != 7 {
		t.Fatalf("consumer remade by a worker: ack wait %s, max deliver %d; want the cluster's 3s and 7", cfg.AckWait, cfg.MaxDeliver)
	}
}
