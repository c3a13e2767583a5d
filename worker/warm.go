package worker

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskwire/taskwire/protocol"
)

// Warm configures a queue's warm mode (see "Warm mode" in the package
// documentation). The zero value of each field means its default.
type Warm struct {
	// Processes is the number of runtime processes kept started; default 1.
	Processes int
	// TasksPerProcess is the number of tasks one process runs at once (the
	// comm connections it keeps open); default 1.
	TasksPerProcess int
	// MaxTasks recycles a process once it was given this many tasks; 0 is
	// no limit.
	MaxTasks int
	// MaxRSS recycles a process whose resident memory (of its leader, read
	// when one of its tasks ends) is above this many bytes; 0 is no limit.
	MaxRSS int64
	// IdleTimeout stops a process that ran no task for this long; it is
	// started again when a task needs it. 0 keeps processes forever.
	IdleTimeout time.Duration
}

func (w Warm) withDefaults() Warm {
	if w.Processes <= 0 {
		w.Processes = 1
	}
	if w.TasksPerProcess <= 0 {
		w.TasksPerProcess = 1
	}
	return w
}

func (w Warm) validate() error {
	if w.Processes < 0 || w.TasksPerProcess < 0 || w.MaxTasks < 0 || w.MaxRSS < 0 || w.IdleTimeout < 0 {
		return errors.New("processes, tasks_per_process, max_tasks, max_rss and idle_timeout may not be negative")
	}
	if w.TasksPerProcess > 100000 {
		return fmt.Errorf("tasks_per_process %d is above 100000", w.TasksPerProcess)
	}
	return nil
}

// warmPool is the warm processes of one queue.
type warmPool struct {
	w     *Worker
	q     string
	rt    Runtime
	cfg   Warm
	log   *slog.Logger
	idle  chan warmConn // comm connections waiting for a task, of every process
	procs sync.WaitGroup

	mu       sync.Mutex
	live     map[*warmProc]bool
	stopping bool
	failures int // processes in a row that died before serving a task
	// waiting counts the tasks in acquire; no process is reaped as idle
	// while one waits.
	waiting atomic.Int32

	// For the metrics (WarmCollector): processes recycled by reason,
	// crashed, and killed by the worker.
	recycledMaxTasks, recycledMaxRSS, recycledIdle, crashes, kills atomic.Int64
	// refused counts the comm connections of the pool's processes refused
	// for want of the secret, for the reason of a task that found no slot.
	refused atomic.Int64
	janitor chan struct{}
}

// warmConn is a comm connection a warm process opened and waits on for a
// task's StartupDetails.
type warmConn struct {
	wp *warmProc
	c  net.Conn
}

// warmProc is one warm runtime process.
type warmProc struct {
	pool    *warmPool
	p       *proc
	started time.Time

	commLn, logsLn net.Listener
	cleanup        func()
	// secret is the process's protocol.EnvCommSecret: each of its comm and
	// log connections presents it first.
	secret string

	mu        sync.Mutex
	running   int
	served    int
	retiring  bool
	idleSince time.Time
	// killedWhy is set when the worker killed the process, for the reason
	// of the tasks it was running.
	killedWhy string
	// streams are the tasks waiting for their log stream, by "ti_id/try".
	streams map[string]*warmStream
	// logsDone is closed when acceptLogs has returned: every log stream the
	// process opened has been read to its end.
	logsDone chan struct{}
	// dialed is closed when the process opened its first comm connection.
	dialed     chan struct{}
	dialedOnce sync.Once
}

// warmStream is the log stream of one task of a warm process.
type warmStream struct {
	tl   *taskLog
	done chan struct{} // closed when the stream ended
	once sync.Once
	seen bool // a log stream named the task; guarded by its warmProc.mu
}

func (s *warmStream) end() { s.once.Do(func() { close(s.done) }) }

func newWarmPool(w *Worker, q string, rt Runtime) *warmPool {
	cfg := rt.Warm.withDefaults()
	return &warmPool{w: w, q: q, rt: rt, cfg: cfg, log: w.log.With("queue", q, "warm", true),
		idle: make(chan warmConn, cfg.Processes*cfg.TasksPerProcess*2+16), live: map[*warmProc]bool{},
		janitor: make(chan struct{})}
}

// start starts the pool's processes ahead of its tasks.
func (wp *warmPool) start() error {
	if err := wp.ensure(); err != nil {
		return err
	}
	if wp.cfg.IdleTimeout > 0 {
		wp.procs.Add(1)
		go wp.reapIdle()
	}
	return nil
}

// errNoWarm refuses a warm queue whose runtime does not serve warm mode.
var errNoWarm = errors.New("warm runtime does not serve warm mode")

// probe waits until a process of the pool opened a comm connection: a
// runtime that ends before it does (an SDK without warm mode runs one try
// and exits; a runtime that fails at start) refuses the worker's start
// with errNoWarm, naming how it ended. A runtime still starting after
// wait is let be (slow, not wrong).
func (wp *warmPool) probe(ctx context.Context, wait time.Duration) error {
	wp.mu.Lock()
	var first *warmProc
	for p := range wp.live {
		first = p
		break
	}
	wp.mu.Unlock()
	if first == nil {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-first.dialed:
		return nil
	case <-first.p.done:
		select {
		case <-first.dialed:
			return nil
		default:
		}
		first.mu.Lock()
		byWorker := first.retiring || first.killedWhy != ""
		first.mu.Unlock()
		if byWorker {
			return nil // retired (idle, shutdown) or killed: nothing to judge
		}
		return fmt.Errorf("queue %s: %w: its process %d ended (%s) before it opened a comm connection; "+
			"the Go, Python and Java SDKs serve warm mode (%s), a runtime without it runs one try and exits: "+
			"remove warm: from the queue or fix the runtime (stderr tail: %q)",
			wp.q, errNoWarm, first.p.pgid, first.p.exitStatus(), protocol.EnvWarmTasks, first.p.stderr.String())
	case <-t.C:
		wp.log.Warn("warm runtime has not opened a comm connection yet; starting anyway", "waited", wait)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ensure starts processes until Processes of them are live and not
// retiring.
func (wp *warmPool) ensure() error {
	wp.mu.Lock()
	defer wp.mu.Unlock()
	if wp.stopping {
		return errShutdown
	}
	n := 0
	for p := range wp.live {
		p.mu.Lock()
		if !p.retiring {
			n++
		}
		p.mu.Unlock()
	}
	for ; n < wp.cfg.Processes; n++ {
		if err := wp.spawnLocked(); err != nil {
			return err
		}
	}
	return nil
}

// spawnLocked starts one process; wp.mu is held.
func (wp *warmPool) spawnLocked() error {
	secret, err := protocol.NewSecret()
	if err != nil {
		return err
	}
	commLn, logsLn, cleanup, err := listenRuntime(wp.rt.Socket)
	if err != nil {
		return err
	}
	comm, logs := commLn.Addr().String(), logsLn.Addr().String()
	argv := make([]string, len(wp.rt.Command))
	for i, a := range wp.rt.Command {
		argv[i] = strings.NewReplacer(PlaceholderCommAddr, comm, PlaceholderLogsAddr, logs).Replace(a)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TASKWIRE_") {
			env = append(env, kv)
		}
	}
	for k, v := range wp.rt.Env {
		env = append(env, k+"="+v)
	}
	env = append(env, "TASKWIRE_COMM_ADDR="+comm, "TASKWIRE_LOGS_ADDR="+logs,
		"TASKWIRE_CODEC="+wp.rt.Codec.String(), "TASKWIRE_QUEUE="+wp.q,
		protocol.EnvWarmTasks+"="+strconv.Itoa(wp.cfg.TasksPerProcess), protocol.EnvCommSecret+"="+secret)
	p := &warmProc{pool: wp, started: time.Now(), commLn: commLn, logsLn: logsLn, cleanup: cleanup, secret: secret,
		idleSince: time.Now(), streams: map[string]*warmStream{}, logsDone: make(chan struct{}), dialed: make(chan struct{})}
	// The process may print before startProcess returns its pid.
	var plog atomic.Pointer[slog.Logger]
	plog.Store(wp.log)
	output := func(stream, line string) {
		plog.Load().Info("warm runtime output", "stream", stream, "line", line)
	}
	pr, err := wp.w.startProcess(argv, env, wp.rt.Dir, output, "warm-"+wp.q)
	if err != nil {
		cleanup()
		return fmt.Errorf("start warm runtime: %w", err)
	}
	p.p = pr
	plog.Store(wp.log.With("pid", pr.pgid))
	wp.live[p] = true
	wp.procs.Add(3)
	go p.acceptComm()
	go p.acceptLogs()
	go p.watch()
	plog.Load().Debug("warm runtime started")
	return nil
}

// acceptComm queues the process's comm connections for tasks once they
// presented the process's secret; the others are refused.
func (p *warmProc) acceptComm() {
	defer p.pool.procs.Done()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := p.commLn.Accept()
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			peer, err := p.pool.w.authComm(c, p.secret)
			if err != nil {
				p.pool.refused.Add(1)
				p.pool.w.reject(chanComm, c, peer, err, "queue", p.pool.q, "warm_pid", p.p.pgid)
				return
			}
			p.dialedOnce.Do(func() { close(p.dialed) })
			p.pool.idle <- warmConn{wp: p, c: c}
		}()
	}
}

// acceptLogs routes each log stream to its task by its header line.
func (p *warmProc) acceptLogs() {
	defer p.pool.procs.Done()
	defer close(p.logsDone)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := p.logsLn.Accept()
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			p.readStream(c)
		}()
	}
}

func (p *warmProc) readStream(c net.Conn) {
	peer, h, br, err := p.pool.w.authLogs(c, p.secret)
	if err == nil && h.Cold() {
		err = errors.New("a cold runtime's log header on a warm process's logs address")
	}
	if err != nil {
		p.pool.w.reject(chanLogs, c, peer, err, "queue", p.pool.q, "warm_pid", p.p.pgid)
		return
	}
	if h.Mux {
		p.readMux(br)
		return
	}
	p.mu.Lock()
	s := p.streams[streamKey(h.TIID, h.TryNumber)]
	if s != nil && s.seen {
		s = nil
	}
	if s != nil {
		s.seen = true
	}
	p.mu.Unlock()
	if s == nil {
		p.pool.log.Warn("warm runtime log stream for no running task", "ti_id", h.TIID, "try_number", h.TryNumber)
		return
	}
	defer s.end()
	readLines(br, func(line string) {
		if strings.TrimSpace(line) != "" {
			s.tl.task([]byte(line))
		}
	})
}

// readMux reads a multiplexed log connection (protocol.MuxLogLine): each
// line goes to the log of the try it names; a try's empty line ends its
// stream. Lines of a try not running here (over, or never) are dropped.
func (p *warmProc) readMux(br *bufio.Reader) {
	var (
		lastKey string
		last    *warmStream
		warned  bool
	)
	readLines(br, func(line string) {
		id, try, rec, err := protocol.ParseMuxLogLine([]byte(line))
		if err != nil {
			if !warned {
				warned = true
				p.pool.log.Warn("warm runtime mux log line", "err", err)
			}
			return
		}
		key := streamKey(id, try)
		s := last
		if key != lastKey || s == nil {
			p.mu.Lock()
			s = p.streams[key]
			if s != nil {
				s.seen = true
			}
			p.mu.Unlock()
			lastKey, last = key, s
		}
		if s == nil {
			return
		}
		if len(rec) == 0 {
			s.end()
			last = nil
			return
		}
		if len(bytes.TrimSpace(rec)) > 0 {
			s.tl.task(rec)
		}
	})
}

func streamKey(tiID string, try int) string { return tiID + "/" + strconv.Itoa(try) }

// watch waits for the process to end, ends its connections and replaces it.
func (p *warmProc) watch() {
	defer p.pool.procs.Done()
	p.p.wait()
	p.commLn.Close()
	// A task's log stream may still wait in the listener's backlog (the
	// process dialed it, wrote its lines and exited before the worker
	// accepted it): accept what is queued, then close.
	grace := p.pool.w.cfg.KillGrace
	if dl, ok := p.logsLn.(interface{ SetDeadline(time.Time) error }); ok {
		_ = dl.SetDeadline(time.Now().Add(min(grace, time.Second)))
		select {
		case <-p.logsDone:
		case <-time.After(grace):
		}
	}
	p.logsLn.Close()
	p.cleanup()
	wp := p.pool
	p.mu.Lock()
	served, retiring, why := p.served, p.retiring, p.killedWhy
	p.mu.Unlock()
	wp.mu.Lock()
	delete(wp.live, p)
	stopping := wp.stopping
	if served == 0 && !retiring {
		wp.failures++
	} else {
		wp.failures = 0
	}
	failures := wp.failures
	wp.mu.Unlock()
	if stopping || (retiring && why == "") {
		wp.log.Debug("warm runtime ended", "pid", p.p.pgid, "status", p.p.exitStatus())
		return
	}
	if why == "" {
		wp.crashes.Add(1)
	}
	if why == "" && p.p.exitCode() == 0 {
		// The SDKs' warm runtimes return only once the worker stops
		// taking their connections: a clean exit of one that was not
		// retired is a runtime that does not serve warm mode (an SDK
		// without it runs one try and exits).
		wp.log.Error("warm runtime exited by itself: does its SDK serve warm mode ("+protocol.EnvWarmTasks+")? "+
			"The Go, Python and Java SDKs do; else remove warm: from the queue's runtime",
			"pid", p.p.pgid, "served", served, "stderr_tail", p.p.stderr.String())
	} else {
		wp.log.Warn("warm runtime ended", "pid", p.p.pgid, "status", p.p.exitStatus(), "killed", why,
			"stderr_tail", p.p.stderr.String())
	}
	if failures > 0 {
		// A runtime that dies at once would be restarted in a loop: back off.
		t := time.NewTimer(min(time.Duration(failures)*500*time.Millisecond, 10*time.Second))
		select {
		case <-t.C:
		case <-wp.janitor:
			t.Stop()
			return
		}
	}
	if err := wp.ensure(); err != nil && !errors.Is(err, errShutdown) {
		wp.log.Error("replace warm runtime", "err", err)
	}
}

// crash describes how the process ended, for the reason of its tasks.
func (p *warmProc) crash() string {
	p.mu.Lock()
	why := p.killedWhy
	p.mu.Unlock()
	if why != "" {
		return fmt.Sprintf("warm runtime process %d was killed: %s", p.p.pgid, why)
	}
	s := fmt.Sprintf("warm runtime process %d crashed: %s", p.p.pgid, p.p.exitStatus())
	if tail := p.p.stderr.String(); tail != "" {
		s += ", stderr tail: " + tail
	}
	return s
}

// kill kills the process (SIGTERM, SIGKILL after the kill grace) for why.
func (p *warmProc) kill(why string) {
	p.mu.Lock()
	if p.killedWhy == "" {
		p.killedWhy = why
		p.pool.kills.Add(1)
	}
	p.retiring = true
	p.mu.Unlock()
	p.pool.log.Warn("killing warm runtime", "pid", p.p.pgid, "reason", why)
	p.commLn.Close()
	p.p.terminate()
	_ = p.pool.ensure()
}

// retire stops giving the process tasks; it is ended once its tasks are
// done. A replacement is started when replace.
func (p *warmProc) retire(why string, replace bool) {
	p.mu.Lock()
	if p.retiring {
		p.mu.Unlock()
		return
	}
	p.retiring = true
	p.mu.Unlock()
	p.retired(why, replace)
}

// retired ends the process that was just marked retiring: at once when it
// runs no task, else when its last task ends (release).
func (p *warmProc) retired(why string, replace bool) {
	p.mu.Lock()
	idle := p.running == 0
	p.mu.Unlock()
	p.pool.log.Debug("retiring warm runtime", "pid", p.p.pgid, "reason", why)
	p.commLn.Close()
	if idle {
		p.p.terminate()
	}
	if replace {
		_ = p.pool.ensure()
	}
}

func (p *warmProc) isRetiring() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.retiring
}

// counts returns the pool's live processes and the tasks they run.
func (wp *warmPool) counts() (procs, tasks int) {
	wp.mu.Lock()
	defer wp.mu.Unlock()
	for p := range wp.live {
		procs++
		p.mu.Lock()
		tasks += p.running
		p.mu.Unlock()
	}
	return procs, tasks
}

// take gives the process one more task, when it is not retiring.
func (p *warmProc) take() bool {
	p.mu.Lock()
	if p.retiring {
		p.mu.Unlock()
		return false
	}
	select {
	case <-p.p.done:
		p.mu.Unlock()
		return false
	default:
	}
	p.running++
	p.served++
	full := p.pool.cfg.MaxTasks > 0 && p.served >= p.pool.cfg.MaxTasks
	p.mu.Unlock()
	if full {
		p.pool.recycledMaxTasks.Add(1)
		p.retire(fmt.Sprintf("served max_tasks %d", p.pool.cfg.MaxTasks), true)
	}
	return true
}

// release ends a task of the process: it recycles the process above
// MaxRSS, and ends a retiring one once it has no task left.
func (p *warmProc) release() {
	if m := p.pool.cfg.MaxRSS; m > 0 {
		if rss, err := processRSS(p.p.pgid); err == nil && rss > m && !p.isRetiring() {
			p.pool.recycledMaxRSS.Add(1)
			p.retire(fmt.Sprintf("rss %d above max_rss %d", rss, m), true)
		}
	}
	p.mu.Lock()
	p.running--
	p.idleSince = time.Now()
	end := p.retiring && p.running == 0
	p.mu.Unlock()
	if end {
		p.p.terminate()
	}
}

// processRSS returns the resident memory of process pid in bytes.
func processRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, errors.New("no VmRSS")
}

// reapIdle retires the processes that ran no task for IdleTimeout.
func (wp *warmPool) reapIdle() {
	defer wp.procs.Done()
	t := time.NewTicker(max(wp.cfg.IdleTimeout/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-wp.janitor:
			return
		case <-t.C:
		}
		// A task waiting in acquire keeps every process: it may wait for
		// one that is still starting (and so has run nothing yet). The
		// processes are marked retiring under wp.mu, so acquire's ensure
		// either runs before (waiting is counted: nothing is reaped) or
		// after (it starts a replacement).
		wp.mu.Lock()
		var idle []*warmProc
		if wp.waiting.Load() == 0 {
			for p := range wp.live {
				p.mu.Lock()
				if p.running == 0 && !p.retiring && time.Since(p.idleSince) > wp.cfg.IdleTimeout {
					p.retiring = true
					idle = append(idle, p)
				}
				p.mu.Unlock()
			}
		}
		wp.mu.Unlock()
		for _, p := range idle {
			wp.recycledIdle.Add(1)
			p.retired("idle_timeout", false)
		}
	}
}

// acquire returns a comm connection of a live process with room, the task
// counted in. It waits while the pool's slots are all running tasks, and
// up to HandshakeTimeout when no process has connected.
func (wp *warmPool) acquire(ctx context.Context) (warmConn, error) {
	wp.waiting.Add(1)
	defer wp.waiting.Add(-1)
	if err := wp.ensure(); err != nil {
		return warmConn{}, err
	}
	t := time.NewTimer(wp.w.cfg.HandshakeTimeout)
	defer t.Stop()
	for {
		select {
		case wc := <-wp.idle:
			if wc.wp.take() {
				return wc, nil
			}
			wc.c.Close()
		case <-t.C:
			if wp.busy() {
				// Every slot runs a task: wait for one to end.
				t.Reset(wp.w.cfg.HandshakeTimeout)
				continue
			}
			if n := wp.refused.Load(); n > 0 {
				return warmConn{}, fmt.Errorf("no warm runtime process of queue %s authenticated on the comm channel within %s: "+
					"%d connection(s) without the process's secret; %s", wp.q, wp.w.cfg.HandshakeTimeout, n, errSDKTooOld)
			}
			return warmConn{}, fmt.Errorf("no warm runtime process of queue %s connected within %s", wp.q, wp.w.cfg.HandshakeTimeout)
		case <-ctx.Done():
			return warmConn{}, context.Cause(ctx)
		}
	}
}

// busy reports whether a live process runs tasks (so a slot will come
// free), as opposed to none having connected.
func (wp *warmPool) busy() bool {
	wp.mu.Lock()
	defer wp.mu.Unlock()
	for p := range wp.live {
		p.mu.Lock()
		n := p.running
		p.mu.Unlock()
		if n > 0 {
			return true
		}
	}
	return false
}

// stop ends every process of the pool and waits for them; call it once no
// task runs.
func (wp *warmPool) stop() {
	wp.mu.Lock()
	if wp.stopping {
		wp.mu.Unlock()
		return
	}
	wp.stopping = true
	close(wp.janitor)
	procs := make([]*warmProc, 0, len(wp.live))
	for p := range wp.live {
		procs = append(procs, p)
	}
	wp.mu.Unlock()
	for _, p := range procs {
		p.commLn.Close()
		p.p.terminate()
	}
	wp.procs.Wait()
	for {
		select {
		case wc := <-wp.idle:
			wc.c.Close()
		default:
			return
		}
	}
}

// runWarm runs the job on a comm connection of one of its queue's warm
// processes: StartupDetails on it, its requests answered, its log stream
// read, exactly as in cold mode, but the process outlives the try.
func (j *job) runWarm(ctx context.Context) outcome {
	wc, err := j.pool.acquire(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return outcome{killed: context.Cause(ctx)}
		}
		return retry("%v", err)
	}
	p := wc.wp
	defer p.release()
	key := streamKey(j.ti.ID, j.ti.TryNumber)
	s := &warmStream{tl: j.tl, done: make(chan struct{})}
	p.mu.Lock()
	p.streams[key] = s
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.streams, key)
		p.mu.Unlock()
	}()
	j.tl.worker("info", fmt.Sprintf("running in warm runtime process %d", p.p.pgid))
	return j.serveWarm(ctx, wc.c, p, s)
}

// serveWarm is serve for a warm process: the task's end is its connection
// closing. When ctx ends the worker half-closes the connection (the
// runtime cancels the task); a task that does not close it within the kill
// grace gets its process killed.
func (j *job) serveWarm(ctx context.Context, c net.Conn, p *warmProc, s *warmStream) outcome {
	defer c.Close()
	conn := protocol.NewConn(c, j.rt.Codec, protocol.MaxFrameSizeDefault)
	grace := j.w.cfg.KillGrace

	var (
		mu     sync.Mutex
		killed error
		stop   = make(chan struct{})
		wg     sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		var deadline <-chan time.Time
		ctxDone := ctx.Done()
		for {
			select {
			case <-stop:
				return
			case <-ctxDone:
				ctxDone = nil
				mu.Lock()
				killed = context.Cause(ctx)
				mu.Unlock()
				if cw, ok := c.(interface{ CloseWrite() error }); ok {
					_ = cw.CloseWrite()
				} else {
					c.Close()
				}
				t := time.NewTimer(grace)
				defer t.Stop()
				deadline = t.C
			case <-deadline:
				deadline = nil
				j.tl.worker("error", fmt.Sprintf("task did not stop within %s: killing its warm runtime process", grace))
				p.kill(fmt.Sprintf("task %s did not stop within %s of being cancelled (%v)", j.ti.ID, grace, context.Cause(ctx)))
			case <-p.p.done:
				_ = c.SetReadDeadline(time.Now().Add(grace))
				<-stop
				return
			}
		}
	}()

	// The runtime closes the connection once the task returned; one that
	// keeps it open after the final message is not waited for.
	final, protoErr := j.exchange(ctx, conn, func(outcome) { _ = c.SetReadDeadline(time.Now().Add(grace)) })
	if protoErr != nil {
		// The connection is the process's: a protocol error may have left
		// it in any state, so the process goes, its other tasks retried.
		j.tl.worker("error", "protocol error: "+protoErr.Error())
		p.kill(fmt.Sprintf("protocol error from task %s: %v", j.ti.ID, protoErr))
	}
	// The connection ended: the task returned (the runtime closes its
	// connection then), or its process is gone.
	close(stop)
	wg.Wait()
	mu.Lock()
	k := killed
	mu.Unlock()
	crashed := false
	if final == nil && protoErr == nil && k == nil {
		t := time.NewTimer(grace)
		select {
		case <-p.p.done:
			crashed = true
		case <-t.C:
		}
		t.Stop()
	}
	ts := time.NewTimer(grace)
	select {
	case <-s.done:
	case <-p.logsDone: // the process is gone and its log streams were read
	case <-ts.C:
		p.mu.Lock() // seen is set under p.mu by the log readers
		seen := s.seen
		p.mu.Unlock()
		if seen {
			j.tl.worker("warning", fmt.Sprintf("log stream still open %s after the task ended", grace))
		}
	}
	ts.Stop()

	switch {
	case final != nil:
		return *final
	case protoErr != nil:
		return retry("protocol error: %v", protoErr)
	case k != nil:
		return outcome{killed: k}
	case crashed:
		why := p.crash()
		j.tl.worker("error", why)
		return retry("%s", why)
	}
	j.tl.worker("error", "the task's connection closed without a final message")
	return retry("warm runtime closed the task's connection without a final message")
}
