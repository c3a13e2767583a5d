package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
)

// Limits bounds the bytes every stream and bucket that can grow may hold,
// so that no one of them can fill the store the others need: a task that
// writes gigabytes of logs loses its oldest lines, it does not stop the
// task-instance records from being written.
//
// Each limit is a JetStream MaxBytes, which the server reserves out of its
// store when the stream is made: the limits together take at most
// limitsShareOfBudget of Budget and the rest stays free for the
// task-instance records (task_instances has no byte limit of its own: a
// record that could not be written would lose a task's state). A zero field
// means its default, a share of Budget; a negative one means no limit.
type Limits struct {
	// Budget is the storage taskwire may use in bytes. Default: the
	// account's JetStream storage limit when it has one, else
	// BudgetDefault. The executor's embedded NATS passes its own store
	// limit (75% of the disk space free at start, nats-server's default).
	Budget int64
	// Logs bounds the LOGS stream; the oldest lines are dropped first.
	// Default 25% of Budget.
	Logs int64
	// LogPerTry bounds the log of one try: past it the try's later lines
	// are dropped and one line says so; the task is not failed for it.
	// Default the smaller of Logs/4 and LogPerTryDefault.
	LogPerTry int64
	// Queue bounds each of ACTIVITIES, TRIGGERS and EVENTS: a
	// submit beyond it is refused (nothing queued is dropped). Default 5%
	// of Budget each.
	Queue int64
	// DeadLetter bounds the DEADLETTER stream, oldest dropped first.
	// Default 5% of Budget.
	DeadLetter int64
	// XCom bounds the xcom bucket: a push beyond it is refused. Default
	// 10% of Budget.
	XCom int64
	// Small bounds each of the variables, connections, config, triggers,
	// triggerers, workers and external_events buckets. Default 1% of
	// Budget each.
	Small int64
}

// Defaults of [Limits].
const (
	// BudgetDefault is the budget when the account states no storage
	// limit (an external NATS whose server limit a client cannot see).
	BudgetDefault int64 = 8 << 30
	// LogPerTryDefault caps the default per-try log limit.
	LogPerTryDefault int64 = 100 << 20
	// limitMin is the least any default limit is, so that a tiny budget
	// still leaves room for a few messages.
	limitMin int64 = 1 << 20
)

// logPerTryMetadata names the LOGS stream metadata that carries
// Limits.LogPerTry to the workers, which bind to the stream.
const logPerTryMetadata = "taskwire_log_max_bytes_per_try"

// WithDefaults returns l with its zero fields set from Budget (which must be
// set: see Client's use of the account's limit).
func (l Limits) WithDefaults() Limits {
	if l.Budget <= 0 {
		l.Budget = BudgetDefault
	}
	share := func(v *int64, percent int64) {
		if *v == 0 {
			*v = max(l.Budget/100*percent, limitMin)
		}
	}
	share(&l.Logs, 25)
	share(&l.Queue, 5)
	share(&l.DeadLetter, 5)
	share(&l.XCom, 10)
	share(&l.Small, 1)
	if l.LogPerTry == 0 {
		l.LogPerTry = LogPerTryDefault
		if l.Logs > 0 {
			l.LogPerTry = max(min(l.Logs/4, LogPerTryDefault), limitMin/4)
		}
	}
	return l
}

// maxBytes is v as a JetStream MaxBytes: -1 for no limit.
func maxBytes(v int64) int64 {
	if v <= 0 {
		return -1
	}
	return v
}

// resolveLimits sets c.cfg.Limits.Budget from the account when it is not
// given, then the defaults.
func (c *Client) resolveLimits(ctx context.Context) {
	if c.cfg.Limits.Budget <= 0 {
		if info, err := c.js.AccountInfo(ctx); err == nil && info.Limits.MaxStore > 0 {
			c.cfg.Limits.Budget = info.Limits.MaxStore
		}
	}
	c.cfg.Limits = c.cfg.Limits.WithDefaults()
}

// limitStream sets sc's byte limit and what is dropped at it.
func (c *Client) limitStream(sc *jetstream.StreamConfig) {
	l := c.cfg.Limits
	switch sc.Name {
	case StreamLogs:
		sc.MaxBytes, sc.Discard = maxBytes(l.Logs), jetstream.DiscardOld
		sc.Metadata = map[string]string{logPerTryMetadata: strconv.FormatInt(l.LogPerTry, 10)}
	case StreamDeadLetter:
		sc.MaxBytes, sc.Discard = maxBytes(l.DeadLetter), jetstream.DiscardOld
	case StreamActivities, StreamTriggers, StreamEvents:
		// Work queues: refuse the new, never drop what is queued.
		sc.MaxBytes, sc.Discard = maxBytes(l.Queue), jetstream.DiscardNew
		// TIMERS has no byte limit: message schedules cannot refuse the new
		// (nats-server) and dropping the old would lose a retry; it holds
		// one small message per task waiting for a retry or a timeout.
	}
}

// limitBucket sets kc's byte limit; a bucket refuses a write beyond it.
func (c *Client) limitBucket(kc *jetstream.KeyValueConfig) {
	switch kc.Bucket {
	case BucketTaskInstances:
		// State is never refused for lack of a limit; records are bounded
		// by their retention instead.
	case BucketXCom:
		kc.MaxBytes = maxBytes(c.cfg.Limits.XCom)
	default:
		kc.MaxBytes = maxBytes(c.cfg.Limits.Small)
	}
}

// adoptLogPerTry takes the per-try log limit the provisioning executor put
// in the LOGS stream's metadata, if any.
func (c *Client) adoptLogPerTry() {
	s := c.streams[StreamLogs]
	if s == nil {
		return
	}
	if v, ok := s.CachedInfo().Config.Metadata[logPerTryMetadata]; ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			c.cfg.Limits.LogPerTry = n
		}
	}
}

// LogPerTryLimit is the byte limit of one try's log in effect (see
// Limits.LogPerTry); 0 or less means none.
func (c *Client) LogPerTryLimit() int64 { return c.cfg.Limits.LogPerTry }

// EffectiveLimits are the limits in effect after defaults.
func (c *Client) EffectiveLimits() Limits { return c.cfg.Limits }

// ErrStorageFull is matched (errors.Is) by the errors of writes JetStream
// refused for lack of space: a stream or bucket at its byte limit, the
// server's store exhausted, or its disk full.
var ErrStorageFull = errors.New("queue: storage full")

// storageFullError wraps a JetStream error that means "no space".
type storageFullError struct{ err error }

func (e *storageFullError) Error() string { return e.err.Error() }
func (e *storageFullError) Unwrap() []error {
	return []error{ErrStorageFull, e.err}
}

// storageErrorCodes are the JetStream error codes of a write refused for
// lack of space.
var storageErrorCodes = map[jetstream.ErrorCode]bool{
	10002: true, // resource limits exceeded for account
	10023: true, // insufficient resources (the server's store is used up)
	10028: true, // insufficient memory resources available
	10047: true, // insufficient storage resources available
	10077: true, // stream store failed: at the stream's byte or message limit
}

// IsStorageFull reports whether err is a write refused for lack of space,
// by JetStream's error code or its text (a publish acknowledgement carries
// only the text).
func IsStorageFull(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrStorageFull) {
		return true
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return storageErrorCodes[apiErr.ErrorCode]
	}
	return false
}

// classify wraps err in a storageFullError when it means "no space".
func classify(err error) error {
	if err == nil || errors.Is(err, ErrStorageFull) || !IsStorageFull(err) {
		return err
	}
	return &storageFullError{err: err}
}

// ClassifyStorage marks err with ErrStorageFull when JetStream refused a
// write for lack of space, so callers can branch with errors.Is.
func ClassifyStorage(err error) error { return classify(err) }

// errCodeStorageReservation is JetStream's "insufficient storage resources
// available": the limits asked for exceed what the server has left to
// reserve.
const errCodeStorageReservation jetstream.ErrorCode = 10047

func isReservationErr(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeStorageReservation
}

// provision creates or updates every stream and bucket with c.cfg.
func (c *Client) provision(ctx context.Context) error {
	for _, sc := range c.streamConfigs() {
		s, err := c.provisionStream(ctx, sc)
		if err != nil {
			return fmt.Errorf("provision stream %s: %w", sc.Name, err)
		}
		c.streams[sc.Name] = s
	}
	for _, kc := range c.bucketConfigs() {
		kv, err := c.provisionBucket(ctx, kc)
		if err != nil {
			return fmt.Errorf("provision kv bucket %s: %w", kc.Bucket, err)
		}
		c.kvs[kc.Bucket] = kv
	}
	return nil
}

// budgetMin is the least budget provisionWithin halves down to.
const budgetMin int64 = 16 << 20

// provisionWithin provisions, halving the budget while the server cannot
// reserve the limits (an external NATS whose store is smaller than the
// budget assumed) and the caller did not set it; the limits the caller set
// (given) are kept as they are.
func (c *Client) provisionWithin(ctx context.Context, given Limits) error {
	for {
		err := c.provision(ctx)
		if err == nil || !isReservationErr(err) || given.Budget > 0 || c.cfg.Limits.Budget/2 < budgetMin {
			return err
		}
		l := given
		l.Budget = c.cfg.Limits.Budget / 2
		c.log.Warn("storage limits do not fit the server's store: halving the budget; set it (--storage-budget)",
			"budget", l.Budget, "err", err)
		c.cfg.Limits = l.WithDefaults()
	}
}

// provisionStream creates or updates sc. When the server cannot reserve
// sc's byte limit and the stream exists (the store shrank since: the disk
// filled), the stream is kept as it is with a warning: refusing to start
// would leave its data unreachable.
func (c *Client) provisionStream(ctx context.Context, sc jetstream.StreamConfig) (jetstream.Stream, error) {
	s, err := c.js.CreateOrUpdateStream(ctx, sc)
	if err == nil || !isReservationErr(err) {
		return s, err
	}
	old, oerr := c.js.Stream(ctx, sc.Name)
	if oerr != nil {
		return nil, err
	}
	c.log.Warn("stream byte limit does not fit the server's store: keeping the stream's limit", "stream", sc.Name,
		"max_bytes", sc.MaxBytes, "kept_max_bytes", old.CachedInfo().Config.MaxBytes, "err", err)
	return old, nil
}

// provisionBucket is provisionStream for a bucket.
func (c *Client) provisionBucket(ctx context.Context, kc jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := c.js.CreateOrUpdateKeyValue(ctx, kc)
	if err == nil || !isReservationErr(err) {
		return kv, err
	}
	old, oerr := c.js.KeyValue(ctx, kc.Bucket)
	if oerr != nil {
		return nil, err
	}
	c.log.Warn("bucket byte limit does not fit the server's store: keeping the bucket's limit", "bucket", kc.Bucket,
		"max_bytes", kc.MaxBytes, "err", err)
	return old, nil
}
