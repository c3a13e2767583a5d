package queue

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Stream names.
const (
	StreamActivities = "ACTIVITIES"
	StreamTriggers   = "TRIGGERS"
	StreamEvents     = "EVENTS"
	StreamLogs       = "LOGS"
	StreamTimers     = "TIMERS"
	StreamDeadLetter = "DEADLETTER"
)

// Key-value bucket names, for [Client.Bucket].
const (
	BucketTaskInstances = "task_instances"
	BucketXCom          = "xcom"
	BucketVariables     = "variables"
	BucketConnections   = "connections"
	BucketConfig        = "config"
	// BucketTriggers holds the claim of every trigger a triggerer holds or
	// that waits to be claimed again, keyed by trigger id.
	BucketTriggers = "triggers"
	// BucketTriggerers holds each triggerer's heartbeat, keyed by its id.
	BucketTriggerers = "triggerers"
	// BucketWorkers is the worker registry: each worker's entry under
	// [WorkerKey] (rewritten every heartbeat) and an operator's drain
	// request under [DrainKey]. Entries of workers gone for
	// [WorkerRegistryTTL] expire.
	BucketWorkers = "workers"
	// BucketExternalEvents holds the last event sent under each name, for
	// "event" triggers.
	BucketExternalEvents = "external_events"
	// BucketPools holds each pool's record (its slots and the task
	// instances holding them), changed by compare-and-set only.
	BucketPools = "pools"
	// BucketIdempotency maps each submit's Idempotency-Key (hashed) to the
	// task instance it made, for IdempotencyKeyTTL.
	BucketIdempotency = "idempotency_keys"
	// BucketRateLimits holds the rate limits of polling triggers
	// ([RateLimitKey]) and their shared token buckets ([RateStateKey]).
	BucketRateLimits = "rate_limits"
	// IdempotencyKeyTTL is how long an Idempotency-Key is remembered.
	IdempotencyKeyTTL = 24 * time.Hour
)

// RateLimitKey is the key of rate key k's limit in [BucketRateLimits].
func RateLimitKey(k string) string { return "limit." + base64.RawURLEncoding.EncodeToString([]byte(k)) }

// RateStateKey is the key of rate key k's token bucket in
// [BucketRateLimits].
func RateStateKey(k string) string { return "state." + base64.RawURLEncoding.EncodeToString([]byte(k)) }

// Defaults for [Config].
const (
	ReplicasDefault           = 1
	ActivityAckWaitDefault    = 30 * time.Second
	ActivityMaxDeliverDefault = 5
	LogMaxAgeDefault          = 7 * 24 * time.Hour
	// DuplicatesWindowDefault is the Nats-Msg-Id de-duplication window of
	// the ACTIVITIES stream.
	DuplicatesWindowDefault = 2 * time.Minute
	// TaskInstanceHistoryDefault is how many revisions of a task-instance
	// record the task_instances bucket keeps.
	TaskInstanceHistoryDefault = 5
	// ActivityMaxWaiting bounds the pull requests waiting on one queue's
	// consumer: one per worker serving the queue (see README, "10,000
	// workers").
	ActivityMaxWaiting = 16_384
	// activityMaxAckPending bounds unacknowledged activities per queue.
	activityMaxAckPending = 100_000
	// requestTimeoutDefault bounds a JetStream request whose context has no
	// deadline.
	requestTimeoutDefault = 10 * time.Second
)

// Config configures [New]. The zero value means defaults.
type Config struct {
	// Replicas is the replica count of every stream and bucket. Default 1;
	// use 3 on a NATS cluster.
	Replicas int
	// Storage is the storage of every stream and bucket. Default
	// jetstream.FileStorage.
	Storage jetstream.StorageType
	// ActivityAckWait is how long a pulled activity stays unacknowledged
	// before JetStream redelivers it. Default 30s. A worker handing an
	// activity over keeps it with InProgress every third of the ack wait,
	// so the ack wait only bounds how long an activity waits when the
	// worker that pulled it died, or when a delivery or its ack was lost;
	// shorter, a saturated worker process misses its InProgress more often
	// (10s doubled the redeliveries of a 1,000-worker fleet, see README).
	ActivityAckWait time.Duration
	// ActivityMaxDeliver is how many times an activity is delivered before
	// a max-deliveries advisory is sent instead. Default 5.
	ActivityMaxDeliver int
	// LogMaxAge is how long task log lines are kept. Default 7 days.
	LogMaxAge time.Duration
	// Logger receives provisioning events. Default slog.Default().
	Logger *slog.Logger
	// Bind makes New take the streams, buckets and consumers that exist as
	// they are, creating only what is missing, and adopt the replica count
	// of the existing ACTIVITIES stream. Workers and triggerers bind; the
	// executor, which owns the layout (replicas, activity ack wait),
	// provisions. Without it a worker started with default settings would
	// scale an R3 layout down to R1 and reset the executor's ack wait; and
	// a client whose NATS permissions allow no more (a worker limited to its
	// queues) could not start.
	Bind bool
	// Limits bounds what each stream and bucket may hold (see [Limits]).
	// A bound client takes the per-try log limit from the LOGS stream.
	Limits Limits
}

// WithDefaults returns a copy of cfg with zero fields set to their defaults.
func (cfg Config) WithDefaults() Config {
	if cfg.Replicas <= 0 {
		cfg.Replicas = ReplicasDefault
	}
	if cfg.ActivityAckWait <= 0 {
		cfg.ActivityAckWait = ActivityAckWaitDefault
	}
	if cfg.ActivityMaxDeliver <= 0 {
		cfg.ActivityMaxDeliver = ActivityMaxDeliverDefault
	}
	if cfg.LogMaxAge <= 0 {
		cfg.LogMaxAge = LogMaxAgeDefault
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg
}

// Client provisions and accesses taskwire's streams and buckets. It is safe
// for concurrent use. It does not own the connection: close it yourself.
type Client struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	cfg     Config
	log     *slog.Logger
	streams map[string]jetstream.Stream
	kvs     map[string]jetstream.KeyValue
	// ownConsumers holds the queues whose activity consumer this
	// provisioning client has set to its config (see PublishActivity).
	ownConsumers sync.Map
}

// New provisions every stream and bucket (creating or updating them, so a
// restart or a second process is fine), or with Config.Bind binds to them,
// and returns a Client.
func New(ctx context.Context, nc *nats.Conn, cfg Config) (*Client, error) {
	cfg = cfg.WithDefaults()
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(requestTimeoutDefault))
	if err != nil {
		return nil, fmt.Errorf("new jetstream: %w", err)
	}
	c := &Client{
		nc:      nc,
		js:      js,
		cfg:     cfg,
		log:     cfg.Logger,
		streams: make(map[string]jetstream.Stream),
		kvs:     make(map[string]jetstream.KeyValue),
	}
	given := cfg.Limits
	c.resolveLimits(ctx)
	if cfg.Bind {
		if err := c.bind(ctx); err != nil {
			return nil, err
		}
		c.adoptLogPerTry()
		c.log.Debug("jetstream bound", "replicas", c.cfg.Replicas, "streams", len(c.streams), "buckets", len(c.kvs))
		return c, nil
	}
	if err := c.provisionWithin(ctx, given); err != nil {
		return nil, err
	}
	c.log.Debug("jetstream provisioned", "replicas", cfg.Replicas, "storage", cfg.Storage.String(),
		"streams", len(c.streams), "buckets", len(c.kvs))
	return c, nil
}

// bind looks up every stream and bucket, creating the missing ones with
// c.cfg, and adopts the replica count of ACTIVITIES for the consumers it
// may create.
func (c *Client) bind(ctx context.Context) error {
	for _, sc := range c.streamConfigs() {
		s, err := c.js.Stream(ctx, sc.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			s, err = c.js.CreateStream(ctx, sc)
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				s, err = c.js.Stream(ctx, sc.Name)
			}
		}
		if err != nil {
			return fmt.Errorf("bind stream %s: %w", sc.Name, err)
		}
		c.streams[sc.Name] = s
	}
	if r := c.streams[StreamActivities].CachedInfo().Config.Replicas; r > 0 {
		c.cfg.Replicas = r
	}
	for _, kc := range c.bucketConfigs() {
		kv, err := c.js.KeyValue(ctx, kc.Bucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			kv, err = c.js.CreateKeyValue(ctx, kc)
			if errors.Is(err, jetstream.ErrBucketExists) {
				kv, err = c.js.KeyValue(ctx, kc.Bucket)
			}
		}
		if err != nil {
			return fmt.Errorf("bind kv bucket %s: %w", kc.Bucket, err)
		}
		c.kvs[kc.Bucket] = kv
	}
	return nil
}

// consumer creates or updates the durable consumer cc on stream; a bound
// client (Config.Bind) takes an existing one as it is and only creates a
// missing one, with cc as adopt (when not nil) changes it first.
func (c *Client) consumer(ctx context.Context, stream string, cc jetstream.ConsumerConfig, adopt func(context.Context, *jetstream.ConsumerConfig)) (jetstream.Consumer, error) {
	if !c.cfg.Bind {
		cons, err := c.js.CreateOrUpdateConsumer(ctx, stream, cc)
		if err == nil {
			return cons, nil
		}
		// A consumer's storage and MaxWaiting cannot be updated: one made
		// by an earlier version with its state in a file, or with the
		// server's default MaxWaiting, is made anew (what it had delivered
		// and not acked is delivered again).
		old, ierr := c.js.Consumer(ctx, stream, cc.Durable)
		if ierr != nil {
			return nil, err
		}
		if oc := old.CachedInfo().Config; oc.MemoryStorage == cc.MemoryStorage && (cc.MaxWaiting == 0 || oc.MaxWaiting == cc.MaxWaiting) {
			return nil, err
		}
		c.log.Warn("consumer storage or max waiting changed: making the consumer anew", "stream", stream, "consumer", cc.Durable,
			"memory_storage", cc.MemoryStorage, "max_waiting", cc.MaxWaiting)
		if derr := c.js.DeleteConsumer(ctx, stream, cc.Durable); derr != nil && !errors.Is(derr, jetstream.ErrConsumerNotFound) {
			return nil, errors.Join(err, derr)
		}
		return c.js.CreateOrUpdateConsumer(ctx, stream, cc)
	}
	cons, err := c.js.Consumer(ctx, stream, cc.Durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		if adopt != nil {
			adopt(ctx, &cc)
		}
		cons, err = c.js.CreateConsumer(ctx, stream, cc)
		if errors.Is(err, jetstream.ErrConsumerExists) {
			cons, err = c.js.Consumer(ctx, stream, cc.Durable)
		}
	}
	return cons, err
}

func (c *Client) streamConfigs() []jetstream.StreamConfig {
	r, st := c.cfg.Replicas, c.cfg.Storage
	scs := []jetstream.StreamConfig{
		{
			Name:        StreamActivities,
			Description: "taskwire activities, one subject per queue",
			Subjects:    []string{"activity.>"},
			Retention:   jetstream.WorkQueuePolicy,
			Duplicates:  DuplicatesWindowDefault,
			// Doorbells: a worker with more queues than free slots waits
			// for one instead of holding a slot in a pull on an idle queue.
			RePublish: &jetstream.RePublish{Source: "activity.>", Destination: "bell.>", HeadersOnly: true},
			Replicas:  r,
			Storage:   st,
			// The queues' consumers' settings, for the workers that make one.
			Metadata: c.activityMetadata(),
		},
		{
			Name:        StreamTriggers,
			Description: "taskwire triggers of deferred tasks",
			Subjects:    []string{"trigger.>"},
			Retention:   jetstream.WorkQueuePolicy,
			Duplicates:  DuplicatesWindowDefault,
			Replicas:    r,
			Storage:     st,
		},
		{
			Name:        StreamEvents,
			Description: "taskwire fired trigger events",
			Subjects:    []string{"event.>"},
			Retention:   jetstream.WorkQueuePolicy,
			Duplicates:  DuplicatesWindowDefault,
			Replicas:    r,
			Storage:     st,
		},
		{
			Name:        StreamLogs,
			Description: "taskwire task log lines",
			Subjects:    []string{"log.>"},
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      c.cfg.LogMaxAge,
			Replicas:    r,
			Storage:     st,
		},
		{
			Name:              StreamTimers,
			Description:       "taskwire timers as scheduled messages",
			Subjects:          []string{"timer.>"},
			Retention:         jetstream.WorkQueuePolicy,
			AllowMsgSchedules: true,
			// Message schedules need roll-ups; the server would turn them
			// on anyway, saying so keeps updates idempotent.
			AllowRollup: true,
			Replicas:    r,
			Storage:     st,
		},
		{
			Name:        StreamDeadLetter,
			Description: "taskwire dead-lettered activities",
			Subjects:    []string{"deadletter.>"},
			Retention:   jetstream.LimitsPolicy,
			Replicas:    r,
			Storage:     st,
		},
	}
	for i := range scs {
		c.limitStream(&scs[i])
	}
	return scs
}

func (c *Client) bucketConfigs() []jetstream.KeyValueConfig {
	r, st := c.cfg.Replicas, c.cfg.Storage
	kcs := []jetstream.KeyValueConfig{
		{Bucket: BucketTaskInstances, Description: "taskwire task-instance records", History: TaskInstanceHistoryDefault, Replicas: r, Storage: st},
		{Bucket: BucketXCom, Description: "taskwire xcom values", Replicas: r, Storage: st},
		{Bucket: BucketVariables, Description: "taskwire variables", Replicas: r, Storage: st},
		{Bucket: BucketConnections, Description: "taskwire connections", Replicas: r, Storage: st},
		{Bucket: BucketConfig, Description: "taskwire configuration", Replicas: r, Storage: st},
		{Bucket: BucketTriggers, Description: "taskwire trigger claims", Replicas: r, Storage: st},
		// Heartbeats of triggerers gone for an hour are garbage.
		{Bucket: BucketTriggerers, Description: "taskwire triggerer heartbeats", TTL: time.Hour, Replicas: r, Storage: st},
		{Bucket: BucketWorkers, Description: "taskwire worker registry", TTL: WorkerRegistryTTL, Replicas: r, Storage: st},
		{Bucket: BucketExternalEvents, Description: "taskwire external events, the last per name", Replicas: r, Storage: st},
		{Bucket: BucketPools, Description: "taskwire pools and their slot holders", Replicas: r, Storage: st},
		{Bucket: BucketRateLimits, Description: "taskwire rate limits of polling triggers and their token buckets", Replicas: r, Storage: st},
		{Bucket: BucketIdempotency, Description: "taskwire submit idempotency keys", TTL: IdempotencyKeyTTL, Replicas: r, Storage: st},
	}
	for i := range kcs {
		c.limitBucket(&kcs[i])
	}
	return kcs
}

// Conn is the NATS connection the client was created with.
func (c *Client) Conn() *nats.Conn { return c.nc }

// JetStream is the client's JetStream context, for tests that
// inspect the broker itself. Everything else uses the domain operations: the
// layering test (internal/layering) keeps them from using it.
func (c *Client) JetStream() jetstream.JetStream { return c.js }

// Bucket returns one of the provisioned buckets, named by a Bucket
// constant. It panics for any other name: that is a programming error.
func (c *Client) Bucket(name string) Bucket {
	kv, ok := c.kvs[name]
	if !ok {
		panic(fmt.Sprintf("queue: unknown kv bucket %q", name))
	}
	return Bucket{kv: kv, js: c.js}
}

// Connected reports nil while the client's connection to NATS is up, and
// why it is not otherwise.
func (c *Client) Connected() error { return ConnReady(c.nc) }

// stream returns a provisioned stream handle.
func (c *Client) stream(name string) jetstream.Stream { return c.streams[name] }
