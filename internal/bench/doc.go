// Package bench measures taskwire beside the raw limits of the machine it
// runs on, in one run, for cmd/bench.
//
// Run starts an embedded cluster on 127.0.0.1, all in this process: a NATS
// server with JetStream (data in a temporary directory), an executor serving
// its HTTP APIs, Config.Workers workers and a triggerer, wired as the
// executor, worker and triggerer commands wire them. It then runs its phases
// one after another:
//
//  1. Raw limits: JetStream publish → pull → ack round trips on a scratch
//     queue; serial fork+exec of the bench binary in its no-op mode (and how
//     long it takes to reach main), and of true(1) for scale; and serial Go
//     SDK handshakes (spawn → connect → StartupDetails read → SucceedTask
//     answered → exit) against a minimal protocol server of this package.
//  2. Dispatch latency at a low rate, one task at a time: from just before
//     Client.Submit is called to the start stamp the task process writes.
//  3. Throughput of Config.Tasks no-op command tasks, then of as many no-op
//     Go SDK tasks: from the first Submit to the last success recorded (the
//     executor's end_date), with Config.Inflight submissions in flight.
//  4. Deferral round trip, one task at a time: the deferring process's end
//     (it defers on an already-due timer) to the resumed process's start.
//  5. Triggerer capacity, after the cluster is stopped, for each count in
//     Config.Timers: a fresh embedded NATS server and a triggerer in a child
//     process; its RSS while it holds that many timers due in an hour, and
//     how late Config.LateTimers more timers, due over Config.LateSpread,
//     fire meanwhile.
//
// Every task process, the Go SDK runtime and the triggerer child are the
// running binary itself (Config.Self), re-executed with EnvMode naming what
// it should be (ModeNoop, ModeSDK, ModeDefer, ModeTriggerer): the binary's
// main must switch on EnvMode before anything else. Package initialization
// runs before main all the same, and the bench binary links a NATS server,
// the executor and the rest: it starts several times slower than a minimal
// Go binary, which the report shows beside true(1). The timestamps compared
// are all taken on this machine's clock.
//
// Outcomes are read from a watch of the task_instances bucket rather than
// by polling the public API (client.Wait polls every 100ms), so that
// waiting adds neither load nor delay to what is measured.
package bench
