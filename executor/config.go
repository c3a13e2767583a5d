package executor

import (
	"errors"
	"log/slog"
	"time"

	"github.com/taskwire/taskwire/queue"
)

// Defaults for Config fields left zero.
const (
	WorkloadTokenTTLDefault  = 7 * 24 * time.Hour
	ExecutionTokenTTLDefault = 10 * time.Minute
	ZombieThresholdDefault   = 30 * time.Second
	ScanIntervalDefault      = 2 * time.Second
	MaxBodyDefault           = 4 << 20
	// LostAfterDefault: three missed heartbeats at the workers' and
	// triggerers' default interval of 5s.
	LostAfterDefault = 15 * time.Second
)

// Config configures an Executor. The zero value of each field means its default.
type Config struct {
	// Queue is the JetStream client (required).
	Queue *queue.Client
	// SigningKey signs task tokens (HS256). Empty: a key shared by all
	// executors on the NATS is read from, or created in, the config bucket.
	SigningKey []byte
	// SecretKey (at least 32 bytes of high-entropy material) seals
	// connections and variables at rest with AES-256-GCM. Empty: a random
	// key shared by all executors is read from, or created in, the config
	// bucket (sealed still, but the key sits beside the data in NATS).
	SecretKey []byte
	// OperatorToken, when set, is required as a bearer token on /api/.
	OperatorToken string
	// WorkloadTokenTTL is how long an activity's workload token is good; default 7 days.
	WorkloadTokenTTL time.Duration
	// ExecutionTokenTTL is how long an execution token is good; default 10m.
	// It is refreshed through the Refreshed-API-Token header when half spent.
	ExecutionTokenTTL time.Duration
	// ZombieThreshold: a running task with no heartbeat for this long is a
	// zombie and fails its try; default 30s.
	ZombieThreshold time.Duration
	// ScanInterval is how often zombies and timeouts are looked for; default 2s.
	ScanInterval time.Duration
	// MaxBody bounds request bodies in bytes; default 4 MiB or the NATS
	// max payload, whichever is smaller.
	MaxBody int64
	// LostAfter: a worker or triggerer whose last heartbeat is older than
	// this is shown as lost (until its registry entry expires); default 15s.
	LostAfter time.Duration
	// RecordRetention is how long a finished task-instance record is kept
	// after its last change; older ones are exported (RecordExportDir) and
	// deleted. Default 30 days; negative keeps every record.
	RecordRetention time.Duration
	// RecordExportDir, when set, receives each record before its deletion,
	// one JSON line in task-instances-YYYY-MM-DD.jsonl.
	RecordExportDir string
	// RetentionInterval is how often old records are looked for; default
	// 10m.
	RetentionInterval time.Duration
	// RecordCache bounds how many finished task-instance records the
	// executor keeps in memory (the most recently used); unfinished ones
	// are always kept, older finished ones are read from storage. Default
	// 10,000.
	RecordCache int
	// StorageCheck, when set, is called every second; while it fails, new
	// work (submits, XCom, variable and connection writes) is answered 507
	// at once and Executor.StorageReady fails. State updates of running
	// tasks still go through. Serve sets it to a free-disk check of the
	// embedded NATS's store.
	StorageCheck func() error
	// Metrics, when set, counts activities, tries, heartbeats and zombies.
	Metrics *Metrics
	// Logger; default slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.WorkloadTokenTTL <= 0 {
		c.WorkloadTokenTTL = WorkloadTokenTTLDefault
	}
	if c.ExecutionTokenTTL <= 0 {
		c.ExecutionTokenTTL = ExecutionTokenTTLDefault
	}
	if c.ZombieThreshold <= 0 {
		c.ZombieThreshold = ZombieThresholdDefault
	}
	if c.ScanInterval <= 0 {
		c.ScanInterval = ScanIntervalDefault
	}
	if c.RecordRetention == 0 {
		c.RecordRetention = RecordRetentionDefault
	}
	if c.RetentionInterval <= 0 {
		c.RetentionInterval = RetentionIntervalDefault
	}
	if c.RecordCache <= 0 {
		c.RecordCache = RecordCacheDefault
	}
	if c.LostAfter <= 0 {
		c.LostAfter = LostAfterDefault
	}
	if c.MaxBody <= 0 {
		// What NATS cannot take in one message is refused at the door.
		c.MaxBody = MaxBodyDefault
		if mp := c.Queue.MaxPayload(); mp > 0 && mp < c.MaxBody {
			c.MaxBody = mp
		}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func (c Config) validate() error {
	if c.Queue == nil {
		return errors.New("executor config: Queue is required")
	}
	if len(c.SigningKey) > 0 && len(c.SigningKey) < 32 {
		return errors.New("executor config: SigningKey must have at least 32 bytes")
	}
	if len(c.SecretKey) > 0 && len(c.SecretKey) < 32 {
		return errors.New("executor config: SecretKey must have at least 32 bytes")
	}
	return nil
}
