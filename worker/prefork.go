package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Prefork configures a queue's pre-forking runtime process, its "zygote":
// a Python process (python -m taskwire.prefork, from the taskwire Python
// SDK) that the worker starts once, that imports the Preload modules once,
// and that forks a child per task, so that no interpreter starts and no
// module is imported per task. A task command of the form
// "python -m MODULE args..." with MODULE in Modules runs in such a child,
// as python -m would run it (runpy, as __main__, with the task's argv,
// environment, working directory, stdin, stdout and stderr); any other
// command, and every command while the zygote is down, starts cold (a
// process of its own), which the task's log says.
//
// The worker talks to the zygote over a SOCK_SEQPACKET socket pair (fd 3
// of the zygote): a request per task with its stdio descriptors attached
// (SCM_RIGHTS); the zygote answers with the child's pid and, when it
// reaped the child, its wait status. The child starts a session of its
// own, so the worker supervises it as a cold process: it kills the
// session on cancel or timeout (SIGTERM, then SIGKILL after the kill
// grace), reads its output, records it in StateDir for orphan cleanup,
// and takes its exit status from the zygote. The child dies with the
// zygote (PR_SET_PDEATHSIG): a zygote that dies with tasks in flight fails
// them (up_for_retry, "prefork zygote died"), and the worker kills what is
// left of their sessions and restarts the zygote (with backoff: doubling
// from RestartDelay up to 30s). The zygote gets SIGTERM when the worker's
// thread that started it dies (Pdeathsig) and sees its socket close when
// the worker exits: either way it kills every child's session and exits,
// so a SIGKILLed worker leaves no task behind.
//
// What a cold interpreter reads at its start (PYTHONPATH, -X options, the
// site directories) is the zygote's: give it in Env (the zygote's own
// environment, on top of the worker's and the runtime's) rather than per
// task.
type Prefork struct {
	// Python is the interpreter that runs the zygote; default the airflow
	// runtime's python, else python3. It must import taskwire.prefork
	// (the taskwire Python SDK) and the Preload modules.
	Python string
	// Preload lists what the zygote imports before it forks: "module", or
	// "module:function" to call function() once module is imported. The
	// airflow runtime's default is taskwire.airflow_runtime:preload
	// (Airflow's task runner and what it imports).
	Preload []string
	// Modules lists the modules whose "python -m MODULE" commands run in
	// the zygote's children (the command runtime's activities). The airflow
	// runtime's shim (taskwire.airflow_runtime) is always one.
	Modules []string
	// Env is added to the zygote's environment.
	Env map[string]string
	// Dir is the zygote's working directory; default the runtime's, else
	// the worker's.
	Dir string
	// RestartDelay is the first wait before the zygote is started again
	// after it exited; it doubles up to 30s. Default 1s.
	RestartDelay time.Duration
	// ReadyTimeout bounds the zygote's start (its imports); default 2m.
	ReadyTimeout time.Duration
	// Spare is how many children the zygote keeps forked ahead, each in
	// its own session waiting for a task: a task goes to a spare (no fork
	// on its path) and the zygote forks the next spare when no request
	// waits. 0 (the default): every task is forked on its request. At most
	// 64.
	Spare int
}

const (
	preforkModule              = "taskwire.prefork"
	preforkRestartDelayDefault = time.Second
	preforkMaxRestartDelay     = 30 * time.Second
	preforkReadyTimeoutDefault = 2 * time.Minute
	// preforkSpawnTimeout bounds the zygote's answer to one fork request.
	preforkSpawnTimeout = 30 * time.Second
	// preforkMaxMessage bounds a request (argv and environment).
	preforkMaxMessage = 4 << 20
	// preforkMaxSpare bounds Prefork.Spare.
	preforkMaxSpare = 64
)

// airflowPreload is what the airflow runtime's zygote imports by default.
const airflowPreload = airflowShim + ":preload"

func (p Prefork) validate() error {
	if p.RestartDelay < 0 || p.ReadyTimeout < 0 {
		return errors.New("prefork: restart_delay and ready_timeout may not be negative")
	}
	if p.Spare < 0 || p.Spare > preforkMaxSpare {
		return fmt.Errorf("prefork: spare %d is outside 0..%d", p.Spare, preforkMaxSpare)
	}
	for _, m := range append(slices.Clone(p.Preload), p.Modules...) {
		if strings.TrimSpace(m) == "" || strings.ContainsAny(m, " /\x00") {
			return fmt.Errorf("prefork: bad module %q", m)
		}
	}
	for k := range p.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("prefork: bad env name %q", k)
		}
	}
	if p.Dir != "" {
		if st, err := os.Stat(p.Dir); err != nil || !st.IsDir() {
			return fmt.Errorf("prefork: dir %q is not a directory", p.Dir)
		}
	}
	return nil
}

// newZygote returns the zygote of queue q's runtime rt, which has Prefork.
func newZygote(w *Worker, q string, rt Runtime) *zygote {
	cfg := *rt.Prefork
	if cfg.RestartDelay <= 0 {
		cfg.RestartDelay = preforkRestartDelayDefault
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = preforkReadyTimeoutDefault
	}
	python := cfg.Python
	if python == "" && rt.Airflow != nil {
		python = rt.Airflow.Python
	}
	if python == "" {
		python = "python3"
	}
	mods := slices.Clone(cfg.Modules)
	preload := slices.Clone(cfg.Preload)
	if rt.Airflow != nil {
		mods = append(mods, airflowShim)
		if len(preload) == 0 {
			preload = []string{airflowPreload}
		}
	}
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TASKWIRE_") {
			env = append(env, kv)
		}
	}
	for k, v := range rt.Env {
		env = append(env, k+"="+v)
	}
	if rt.Airflow != nil {
		env = append(env, rt.Airflow.env()...)
	}
	for k, v := range cfg.Env {
		env = append(env, k+"="+v)
	}
	pl, _ := json.Marshal(preload)
	env = append(env, "TASKWIRE_PREFORK_PRELOAD="+string(pl), "TASKWIRE_PREFORK_SPARE="+strconv.Itoa(cfg.Spare))
	dir := cfg.Dir
	if dir == "" {
		dir = rt.Dir
	}
	return &zygote{w: w, q: q, cfg: cfg, modules: mods, argv: []string{python, "-m", preforkModule}, env: env, dir: dir,
		log: w.log.With("queue", q, "prefork", true), done: make(chan struct{})}
}

// zygote runs and supervises one queue's zygote process.
type zygote struct {
	w       *Worker
	q       string
	cfg     Prefork
	modules []string
	argv    []string
	env     []string
	dir     string
	log     *slog.Logger
	cancel  context.CancelFunc
	done    chan struct{}

	mu     sync.Mutex
	cur    *zconn // nil while the zygote is down or starting
	pid    int
	starts int
}

// zconn is the worker's end of a live zygote's socket.
type zconn struct {
	c    *net.UnixConn
	wmu  sync.Mutex
	dead chan struct{} // closed when the connection ended

	mu      sync.Mutex
	next    uint64
	pending map[uint64]*zchild
	err     error // why it ended
}

// zchild is one forked task process as the worker sees it.
type zchild struct {
	started chan zmsg // the zygote's pid or error answer
	exited  chan struct{}
	status  syscall.WaitStatus
	lost    error // the zygote ended before it reported the exit
	// abandoned: the worker gave up waiting for the pid; kill it when it
	// comes.
	abandoned bool
}

// zmsg is a message from the zygote.
type zmsg struct {
	ID    uint64 `json:"id"`
	Ready int    `json:"ready"`
	Pid   int    `json:"pid"`
	Exit  *int   `json:"exit"`
	Error string `json:"error"`
}

// zreq is a fork request.
type zreq struct {
	ID   uint64            `json:"id"`
	Argv []string          `json:"argv"`
	Env  map[string]string `json:"env"`
	Cwd  string            `json:"cwd,omitempty"`
}

// errPreforkDown is returned by spawn while the zygote is not ready.
var errPreforkDown = errors.New("prefork zygote is not running")

// forkExit is the exit of a forked task process that did not exit 0.
type forkExit struct{ ws syscall.WaitStatus }

func (e *forkExit) Error() string {
	if e.ws.Signaled() {
		return "signal: " + e.ws.Signal().String()
	}
	return fmt.Sprintf("exit status %d", e.ws.ExitStatus())
}

// accepts reports whether argv runs in the zygote: python -m MODULE with
// MODULE one of its modules.
func (z *zygote) accepts(argv []string) bool {
	return len(argv) >= 3 && argv[1] == "-m" && slices.Contains(z.modules, argv[2])
}

func (z *zygote) start() {
	ctx, cancel := context.WithCancel(context.Background())
	z.cancel = cancel
	go z.run(ctx)
}

// stop stops the zygote (its children die with it: Stop runs it after the
// tasks) and waits for it.
func (z *zygote) stop() {
	z.cancel()
	<-z.done
}

func (z *zygote) current() *zconn {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.cur
}

func (z *zygote) run(ctx context.Context) {
	defer close(z.done)
	keepRestarting(ctx, z.cfg.RestartDelay, preforkMaxRestartDelay, z.once, func(err error, after time.Duration) {
		z.log.Warn("prefork zygote exited; tasks start cold until it is back", "err", err, "restart_after", after)
	})
}

// once runs the zygote until it exits or ctx ends.
func (z *zygote) once(ctx context.Context) error {
	// Pdeathsig fires when the thread that started the process exits.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socketpair: %w", err)
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "prefork"), os.NewFile(uintptr(fds[1]), "prefork-zygote")
	fc, err := net.FileConn(mine)
	mine.Close()
	if err != nil {
		theirs.Close()
		return fmt.Errorf("prefork socket: %w", err)
	}
	c := fc.(*net.UnixConn)
	defer c.Close()

	cmd := exec.Command(z.argv[0], z.argv[1:]...)
	cmd.Env = z.env
	cmd.Dir = z.dir
	cmd.ExtraFiles = []*os.File{theirs} // fd 3
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	cmd.Stdout = &lineLog{log: z.log, level: slog.LevelInfo}
	cmd.Stderr = &lineLog{log: z.log, level: slog.LevelWarn}
	err = cmd.Start()
	theirs.Close()
	if err != nil {
		return err
	}
	began := time.Now()
	z.mu.Lock()
	z.pid = cmd.Process.Pid
	z.starts++
	z.mu.Unlock()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	defer func() {
		z.mu.Lock()
		z.pid = 0
		z.mu.Unlock()
	}()

	zc := &zconn{c: c, dead: make(chan struct{}), pending: map[uint64]*zchild{}}
	ready := make(chan error, 1)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		zc.read(z.log, ready)
	}()

	kill := func() {
		// Closing the socket tells the zygote to kill its children and
		// exit; SIGTERM does too; SIGKILL after the grace.
		c.Close()
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		t := time.NewTimer(z.w.cfg.KillGrace)
		defer t.Stop()
		select {
		case <-waited:
		case <-t.C:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-waited
		}
		<-readerDone
	}

	t := time.NewTimer(z.cfg.ReadyTimeout)
	defer t.Stop()
	select {
	case err := <-ready:
		if err != nil {
			kill()
			return err
		}
	case <-t.C:
		kill()
		return fmt.Errorf("not ready within %s", z.cfg.ReadyTimeout)
	case err := <-waited:
		c.Close()
		<-readerDone
		return fmt.Errorf("exited before it was ready: %v", err)
	case <-ctx.Done():
		kill()
		return ctx.Err()
	}
	z.mu.Lock()
	z.cur = zc
	z.mu.Unlock()
	z.log.Info("prefork zygote ready", "pid", cmd.Process.Pid, "took", time.Since(began).Round(time.Millisecond))
	defer func() {
		z.mu.Lock()
		z.cur = nil
		z.mu.Unlock()
	}()

	select {
	case <-ctx.Done():
		kill()
		return ctx.Err()
	case <-zc.dead:
		kill()
		return zc.err
	case err := <-waited:
		c.Close()
		<-readerDone
		if err == nil {
			err = errors.New("exit status 0")
		}
		return err
	}
}

// read dispatches the zygote's messages until its socket ends; the first
// is its ready message, sent to ready.
func (zc *zconn) read(log *slog.Logger, ready chan<- error) {
	buf := make([]byte, 64<<10)
	first := true
	var err error
	for {
		var n int
		n, _, _, _, err = zc.c.ReadMsgUnix(buf, nil)
		if err == nil && n == 0 {
			err = errors.New("prefork zygote closed its socket")
		}
		if err != nil {
			break
		}
		var m zmsg
		if e := json.Unmarshal(buf[:n], &m); e != nil {
			err = fmt.Errorf("bad message from the prefork zygote: %w", e)
			break
		}
		if first {
			first = false
			if m.Ready == 0 {
				err = fmt.Errorf("prefork zygote did not start: %s", m.Error)
				break
			}
			ready <- nil
			continue
		}
		zc.dispatch(log, m)
	}
	if first {
		ready <- err
	}
	zc.fail(err)
}

func (zc *zconn) dispatch(log *slog.Logger, m zmsg) {
	zc.mu.Lock()
	ch := zc.pending[m.ID]
	if ch != nil && m.Exit != nil {
		delete(zc.pending, m.ID)
	}
	abandoned := ch != nil && ch.abandoned
	zc.mu.Unlock()
	switch {
	case ch == nil:
		log.Warn("prefork zygote answered an unknown request", "id", m.ID)
	case m.Exit != nil:
		ch.status = syscall.WaitStatus(*m.Exit)
		close(ch.exited)
	case abandoned && m.Pid > 0:
		// Its task gave up waiting: the process must not run.
		killTree(m.Pid, syscall.SIGKILL)
		_ = syscall.Kill(m.Pid, syscall.SIGKILL)
	default:
		select {
		case ch.started <- m:
		default:
		}
		if m.Error != "" || m.Pid <= 0 {
			zc.mu.Lock()
			delete(zc.pending, m.ID)
			zc.mu.Unlock()
		}
	}
}

// fail ends the connection: every child still pending is lost.
func (zc *zconn) fail(err error) {
	zc.mu.Lock()
	defer zc.mu.Unlock()
	if zc.err != nil {
		return
	}
	zc.err = err
	close(zc.dead)
	for id, ch := range zc.pending {
		ch.lost = err
		close(ch.exited)
		delete(zc.pending, id)
	}
}

// spawn asks the zygote for a child running argv with env in dir, with
// files as its stdin, stdout and stderr; it returns the child and its pid.
func (z *zygote) spawn(argv, env []string, dir string, files [3]*os.File) (*zchild, int, error) {
	zc := z.current()
	if zc == nil {
		return nil, 0, errPreforkDown
	}
	req := zreq{Argv: argv, Env: make(map[string]string, len(env)), Cwd: dir}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		req.Env[k] = v // the last one wins, as with exec
	}
	ch := &zchild{started: make(chan zmsg, 1), exited: make(chan struct{})}
	zc.mu.Lock()
	if zc.err != nil {
		zc.mu.Unlock()
		return nil, 0, errPreforkDown
	}
	zc.next++
	req.ID = zc.next
	zc.pending[req.ID] = ch
	zc.mu.Unlock()
	forget := func() {
		zc.mu.Lock()
		delete(zc.pending, req.ID)
		zc.mu.Unlock()
	}

	body, err := json.Marshal(req)
	if err != nil {
		forget()
		return nil, 0, err
	}
	if len(body) > preforkMaxMessage {
		forget()
		return nil, 0, fmt.Errorf("fork request of %d bytes is above %d (argv and environment)", len(body), preforkMaxMessage)
	}
	oob := syscall.UnixRights(int(files[0].Fd()), int(files[1].Fd()), int(files[2].Fd()))
	zc.wmu.Lock()
	_, _, err = zc.c.WriteMsgUnix(body, oob, nil)
	zc.wmu.Unlock()
	if err != nil {
		forget()
		return nil, 0, fmt.Errorf("send fork request: %w", err)
	}
	t := time.NewTimer(preforkSpawnTimeout)
	defer t.Stop()
	select {
	case m := <-ch.started:
		if m.Error != "" || m.Pid <= 0 {
			return nil, 0, fmt.Errorf("fork: %s", m.Error)
		}
		return ch, m.Pid, nil
	case <-ch.exited:
		// A child that ran and exited (or was lost with the zygote) before
		// this read its pid: both channels are ready and select picks
		// either. It ran: its exit is the task's, it must not start again.
		select {
		case m := <-ch.started:
			if m.Error == "" && m.Pid > 0 {
				return ch, m.Pid, nil
			}
		default:
		}
		return nil, 0, fmt.Errorf("fork: %v", ch.lost)
	case <-t.C:
		zc.mu.Lock()
		ch.abandoned = true
		zc.mu.Unlock()
		// The answer may have come meanwhile.
		select {
		case m := <-ch.started:
			if m.Pid > 0 {
				killTree(m.Pid, syscall.SIGKILL)
				_ = syscall.Kill(m.Pid, syscall.SIGKILL)
			}
		default:
		}
		return nil, 0, fmt.Errorf("the zygote did not answer within %s", preforkSpawnTimeout)
	}
}

// wait waits for the child's exit: nil when it exited 0, a *forkExit
// otherwise, or the error that lost it (the zygote died).
func (ch *zchild) wait() error {
	<-ch.exited
	switch {
	case ch.lost != nil:
		return fmt.Errorf("prefork zygote died (%v) before the task process's exit was known", ch.lost)
	case ch.status.Exited() && ch.status.ExitStatus() == 0:
		return nil
	}
	return &forkExit{ws: ch.status}
}

// PreforkReady reports whether queue q's prefork zygote is ready to fork
// (false for a queue without prefork).
func (w *Worker) PreforkReady(q string) bool {
	z := w.zygotes[q]
	return z != nil && z.current() != nil
}
