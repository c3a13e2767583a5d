package cli

import (
	"flag"
	"log/slog"

	"github.com/taskwire/taskwire/queue"
)

// limitFlags are serve's storage limits (queue.Limits), in bytes; 0 means
// the default share of the budget, -1 no limit.
type limitFlags struct {
	budget, logs, logPerTry, queue, deadLetter, xcom, small int64
}

func registerLimitFlags(fs *flag.FlagSet) *limitFlags {
	var l limitFlags
	i64 := func(p *int64, name, env, help string) {
		fs.Int64Var(p, name, 0, help+" ("+env+")")
	}
	i64(&l.budget, "storage-budget", "TASKWIRE_STORAGE_BUDGET", "bytes of storage taskwire may use; 0: the embedded NATS's store limit (75% of the free disk at start), or the account's limit")
	i64(&l.logs, "logs-max-bytes", "TASKWIRE_LOGS_MAX_BYTES", "byte limit of all task logs, oldest dropped first; 0: 25% of the budget, -1: none")
	i64(&l.logPerTry, "log-max-bytes-per-try", "TASKWIRE_LOG_MAX_BYTES_PER_TRY", "byte limit of one try's log, later lines dropped with a marker line; 0: the smaller of logs-max-bytes/4 and 100 MiB, -1: none")
	i64(&l.queue, "queue-max-bytes", "TASKWIRE_QUEUE_MAX_BYTES", "byte limit of each of the activity, trigger and event streams, beyond which submits are refused; 0: 5% of the budget, -1: none")
	i64(&l.deadLetter, "dead-letter-max-bytes", "TASKWIRE_DEAD_LETTER_MAX_BYTES", "byte limit of the dead-letter stream, oldest dropped first; 0: 5% of the budget, -1: none")
	i64(&l.xcom, "xcom-max-bytes", "TASKWIRE_XCOM_MAX_BYTES", "byte limit of the xcom bucket; 0: 10% of the budget, -1: none")
	i64(&l.small, "bucket-max-bytes", "TASKWIRE_BUCKET_MAX_BYTES", "byte limit of each small bucket (variables, connections, registries...); 0: 1% of the budget, -1: none")
	return &l
}

func (l *limitFlags) limits() queue.Limits {
	return queue.Limits{Budget: l.budget, Logs: l.logs, LogPerTry: l.logPerTry, Queue: l.queue,
		DeadLetter: l.deadLetter, XCom: l.xcom, Small: l.small}
}

func logLimits(log *slog.Logger, l queue.Limits) {
	log.Info("storage limits", "budget", l.Budget, "logs", l.Logs, "log_per_try", l.LogPerTry, "queue", l.Queue,
		"dead_letter", l.DeadLetter, "xcom", l.XCom, "bucket", l.Small)
}
