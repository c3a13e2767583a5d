// Package worker pulls activities from the queues it serves and supervises
// each task try in a child process.
//
// # Pulling
//
// A Worker has Concurrency slots shared by all its queues. Each queue has a
// pull loop that takes the free slots (at most Concurrency/len(Queues) per
// pull, so one queue cannot hold every slot while idle) and sends one
// JetStream pull request for that many messages. A message is handed to its
// own goroutine the moment it arrives, with one slot; the slots a pull did
// not use are given back when the request expires (Config.FetchMaxWait). So
// nothing is pulled without a slot to run it, and nothing waits on a timer.
// With fewer slots than queues, a queue may wait up to FetchMaxWait for a
// pull of another to give its slot back. A pull ends when the server says
// so, however late (a busy server starts a pull's expiry when it takes
// it), never on a client-side timer; one that Stop or a drain ends is
// drained (queue.Puller): the server forgets it, and what was already on
// its way is given back at once with a Nak, never left unacknowledged
// until the consumer's AckWait.
//
// # Hand-off
//
// An ExecuteTask activity is handed over with PATCH …/run and acked once the
// executor answers 200; from then on the task's liveness is its heartbeat,
// not the message. A 409 means another worker owns the try or it is no longer
// queued: the message is acked and dropped. 400/401/403/404 are permanent: the
// activity is dead-lettered and terminated, as is one that does not decode.
// Any other error (the executor unreachable after retries) Naks it for
// redelivery after 2s.
//
// # Supervision
//
// An entrypoint with a command runs it directly (the command runtime), with
// TASKWIRE_* variables describing the try;
// exit code 0 is success, anything else up_for_retry ("exit code N"; the
// executor fails the task when no tries remain). An entrypoint naming a task
// runs in the SDK runtime configured for its queue (Config.Runtimes), started
// with the addresses of two loopback listeners, comm and logs; the worker
// sends StartupDetails on comm and answers the task's requests through the
// Execution API with the try's token, which the process never sees. A
// terminal message (SucceedTask, TaskState, RetryTask, DeferTask) decides the
// outcome; without one the exit code does. A command may defer through its
// defer file (see Deferral). A malformed or unexpected frame
// fails the try ("protocol error: …") and kills the process.
//
// The airflow runtime (Runtime.Airflow, airflow.go) runs Airflow's own task
// runner through the Python SDK's taskwire.airflow_runtime shim and speaks
// Airflow's dialect of the protocol to it (protocol/airflow.go): every
// request type of the pinned Task SDK gets an answer (from the Execution
// API, stored in the try's log, or Airflow's error response); only
// undecodable frames are protocol errors.
//
// Every task runs as the leader of its own process group, with
// Pdeathsig=SIGKILL. Killing it sends SIGTERM to the group, then SIGKILL
// after KillGrace; members left in the group when the leader exits are
// killed too. With a StateDir, running groups are recorded so that a worker
// restarted after a SIGKILL kills its predecessor's orphans.
//
// The worker environment's own TASKWIRE_* variables (credentials among
// them) are not passed to tasks.
//
// Stdout and stderr lines (command runtimes) and the logs channel's JSON
// lines (SDK runtimes) are shipped to the LOGS stream with the secrets the
// task masked replaced by "***": values it named with MaskSecret, the
// passwords and sensitive extra fields (names containing password, secret,
// token, api_key, …) of the connections it read, and the values of the
// variables with such names it read, as Airflow's secrets masker does. The
// reason of a failed try is masked the same way. The log is flushed before the final state is
// reported, so logs are stored by the time the state is visible.
//
// Heartbeats go every HeartbeatInterval; a 409 means the executor has
// decided the try (cancelled, timed out or retried as a zombie): the process
// is killed and no state is reported. An execution timeout kills the process
// and reports up_for_retry. Final reports refused with 409 are logged only.
//
// # Deferral
//
// A task defers by naming a trigger, the method to resume at (next_method)
// and its arguments (next_kwargs). An SDK runtime sends DeferTask; a command
// uses its defer file. The worker reports the try deferred with the trigger
// (PATCH …/state), and the slot is free at once. Once the trigger fires, the
// executor publishes a new ExecuteTask for the same try with next_method and
// next_kwargs, the trigger's event added to next_kwargs as "event"; SDK
// runtimes get both in StartupDetails.
//
// When the trigger failed, ended without an event or passed its timeout, the
// executor resumes the task with next_method "__fail__" and next_kwargs
// {"error": "<why>"}. The worker then starts no process: it logs the error
// and reports the try up_for_retry with it as the reason ("trigger timeout
// after 2s"; "trigger failed" when there is no error), so the task's retries
// apply as to any other failure and the executor fails it when none remain.
// "__fail__" may not be used as a next_method.
//
// A command (a task try, not a callback) gets in TASKWIRE_DEFER_FILE the path
// of a file that does not exist yet, in a directory of its own that the
// worker removes when the try ends. To defer, the command writes one JSON
// object there and exits 0 (the comments are not part of the format):
//
//	{
//	  "trigger":     "timedelta",         // trigger classpath or kind; required
//	  "kwargs":      {"delta": 30},       // the trigger's arguments; optional
//	  "next_method": "resume",            // where to resume; required
//	  "next_kwargs": {"started": "..."},  // arguments to resume with; optional
//	  "timeout":     "10m"                // trigger timeout, a Go duration; optional
//	}
//
// The try is then deferred exactly as by DeferTask, numbers reaching the
// trigger as written. A file that is not one such JSON object (bad JSON,
// trailing data, an unknown field, a missing trigger or next_method, a bad
// timeout, over 1 MiB, not a regular file) fails the try with no retry, as
// a programming error, with the reason "bad defer file
// (TASKWIRE_DEFER_FILE): …". A command that exits non-zero fails as usual
// and its defer file is ignored; one that exits 0 without writing it
// succeeds.
//
// A resumed command (next_method set) also gets TASKWIRE_NEXT_METHOD, the
// method; TASKWIRE_NEXT_KWARGS, the JSON of next_kwargs ("{}" when there are
// none); and TASKWIRE_EVENT, the JSON of next_kwargs["event"] (empty when
// absent). A command that defers again writes the defer file again.
//
// # Warm mode
//
// A queue whose Runtime has Warm set runs its tasks in warm processes: the
// worker starts Warm.Processes runtime processes ahead of any task (with
// TASKWIRE_WARM_TASKS=Warm.TasksPerProcess in their environment, the
// addresses substituted as in cold mode) and gives each many tasks, up to
// TasksPerProcess at once. Cold mode (a process per try) stays the default.
//
// The wire is the cold protocol, unchanged, once per task (each connection
// first presents the process's secret, protocol.EnvCommSecret: see
// protocol.Auth and protocol.LogStreamHeader): a warm process
// keeps TasksPerProcess connections open to the comm address, each waiting
// for a StartupDetails frame. The worker gives a task one idle connection of
// a process with room, sends StartupDetails on it and answers its requests
// with the try's own token, exactly as in cold mode, so per-task requests,
// masking, heartbeats, deferral and final messages need nothing new. Once
// the task's terminal message is answered, the runtime closes that
// connection and opens another for the next task. The logs of all the
// process's tasks go on one connection to the logs address, whose first
// line is a mux protocol.LogStreamHeader ({"mux":true,"secret":…}); each following line is a
// protocol.MuxLogLine, "ti_id TAB try_number TAB json-line", and a try's
// empty line, written before the try reports its outcome, ends its lines
// (golden vector protocol/testdata/log_stream_mux.txt); the worker flushes
// the try's log once it ended. The Go, Python and Java SDKs do this; a
// runtime may instead open a connection per task whose first line is a
// protocol.LogStreamHeader naming the try (golden vector
// protocol/testdata/log_stream_header.jsonl) and close it before it
// reports the outcome: the worker reads both. Stdout and stderr of a warm process belong to no task: they go to
// the worker's own log.
//
// Supervision, per task and per process:
//
//   - A process that dies fails only the tasks it was running, each
//     reported up_for_retry with a reason naming the crash ("warm runtime
//     process 4242 crashed: killed by signal killed, stderr tail: …"), and
//     is replaced (after a back-off when processes die before serving a
//     task).
//   - A task cancelled (execution timeout, heartbeat refused, shutdown) has
//     its connection half-closed by the worker: the runtime cancels that
//     task's context. If its connection is not closed within KillGrace, the
//     worker kills the whole process; its other tasks are reported
//     up_for_retry with "warm runtime process N was killed: task X did not
//     stop within …".
//   - A protocol error on one task's connection kills the process too (its
//     state is unknown), its other tasks retried with the reason.
//   - A process is recycled (given no more tasks, ended once its running
//     ones are done, replaced at once) after MaxTasks tasks, or when its
//     resident memory is above MaxRSS after one of its tasks ended. One
//     that ran nothing for IdleTimeout is ended and started again when a
//     task needs one. No process is ended for idleness while a task waits
//     for a slot (it may wait for a process that is still starting).
//   - Start waits (at most HandshakeTimeout) for the first process of each
//     warm queue to open a comm connection: one that ends before it does
//     (a runtime whose SDK does not serve warm mode runs one try and
//     exits; the Go, Python and Java SDKs do serve it) refuses the start
//     with an ErrConfig naming the queue, the exit and the fix. Later, a
//     process that exits by itself with status 0 is logged at error
//     level, naming the fix, each time it is replaced.
//
// Worker.WarmCollector exports each warm queue's live processes, tasks
// running, recycles by reason, crashes and kills.
//
// What a warm process shares between its tasks: its memory, globals,
// caches, open files and environment (the try's TASKWIRE_* variables and
// the entrypoint's env are not set in it: StartupDetails carries the try).
// A task that corrupts global state, leaks memory or blocks its cancel
// harms its siblings. Prefer cold mode for untrusted or
// memory-hungry tasks, for tasks that set process-wide state, and when one
// task's crash must never touch another.
//
// # Prefork
//
// A queue of the airflow runtime, or of the command runtime for its
// "python -m MODULE" commands, may fork its task processes from a zygote
// (Runtime.Prefork, prefork.go): one Python process per queue that
// imported what the tasks need once. Each child is still a process of its
// own, in a session of its own, supervised as a cold one (its pipes, its
// session killed on cancel, its exit status reported by the zygote); a
// zygote that dies takes its children with it (their tries are retried),
// and while it is down tasks start cold.
//
// # Stop
//
// Stop stops pulling, lets running tasks finish for GracePeriod, then kills
// the rest and reports them up_for_retry ("worker shutting down") so that no
// try is lost, and waits for every goroutine it started.
package worker
