package worker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// maxLineDefault bounds one log line; longer output is split.
const maxLineDefault = 64 << 10

// proc is a task's process, leader of its own process group.
type proc struct {
	pgid      int
	forked    bool // a child of a prefork zygote
	grace     time.Duration
	termGrace time.Duration // when set (by terminateFor), replaces grace
	stateFile string
	stderr    *tail
	// lastOut is the last non-empty line printed on stdout: a DAG-run
	// command task's return value (see returnValue).
	lastOut atomic.Pointer[string]

	done     chan struct{} // closed once the process was reaped and its output read
	exitErr  error
	term     chan struct{} // closed by terminate
	termOnce sync.Once
	wg       sync.WaitGroup // the reaper, the killer and the output readers
}

// startProcess starts argv in its own session and process group (session.go),
// with its stdout and stderr lines given to output ("stdout" or "stderr", the
// line).
func (w *Worker) startProcess(argv, env []string, dir string, output func(stream, line string), tiID string) (*proc, error) {
	return w.startProcessVia(nil, argv, env, dir, output, tiID)
}

// startProcessVia is startProcess in a child of zygote z when z is not nil
// and takes argv (prefork.go); while z is down, or when it fails to fork,
// the process starts cold and output says so.
func (w *Worker) startProcessVia(z *zygote, argv, env []string, dir string, output func(stream, line string), tiID string) (*proc, error) {
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, err
	}
	var (
		pid    int
		wait   func() error
		forked bool
	)
	if z != nil && z.accepts(argv) {
		var ch *zchild
		stdin, serr := os.Open(os.DevNull)
		if serr == nil {
			ch, pid, serr = z.spawn(argv, env, dir, [3]*os.File{stdin, outW, errW})
			stdin.Close()
		}
		if serr == nil {
			wait, forked = ch.wait, true
			z.log.Debug("task process forked", "ti_id", tiID, "pid", pid)
		} else {
			z.log.Warn("prefork: starting the task cold", "ti_id", tiID, "err", serr)
			output("worker", "prefork: starting the task process cold: "+serr.Error())
		}
	}
	if !forked {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = env
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
		cmd.Stdout, cmd.Stderr = outW, errW
		err = cmd.Start()
		if err == nil {
			pid, wait = cmd.Process.Pid, cmd.Wait
		}
	}
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return nil, err
	}
	p := &proc{pgid: pid, forked: forked, grace: w.cfg.KillGrace, stderr: &tail{max: 2048},
		done: make(chan struct{}), term: make(chan struct{})}
	p.stateFile = w.recordProcess(p.pgid, tiID)

	var readers sync.WaitGroup
	readers.Add(2)
	p.wg.Add(4)
	go p.killer()
	go func() {
		defer p.wg.Done()
		defer readers.Done()
		readLines(outR, func(line string) {
			if strings.TrimSpace(line) != "" {
				p.lastOut.Store(&line)
			}
			output("stdout", line)
		})
	}()
	go func() {
		defer p.wg.Done()
		defer readers.Done()
		readLines(errR, func(line string) {
			p.stderr.add(line)
			output("stderr", line)
		})
	}()
	go func() {
		defer p.wg.Done()
		p.exitErr = wait()
		// Whatever the task left in its group dies with it now, what it
		// left in other groups of its session at the next sweep (by session
		// only: the reaped pid may be reused).
		_ = syscall.Kill(-p.pgid, syscall.SIGKILL)
		w.sweeper.add(p.pgid)
		rd := make(chan struct{})
		go func() {
			readers.Wait()
			close(rd)
		}()
		t := time.NewTimer(p.grace)
		select {
		case <-rd:
		case <-t.C:
			// A process outside the group holds the pipes: stop reading.
			outR.Close()
			errR.Close()
			<-rd
		}
		t.Stop()
		outR.Close()
		errR.Close()
		w.forgetProcess(p.stateFile)
		close(p.done)
	}()
	return p, nil
}

// terminate sends SIGTERM to the process group, and SIGKILL after the kill
// grace if the process has not exited by then. It does not block.
func (p *proc) terminate() {
	p.termOnce.Do(func() { close(p.term) })
}

// terminateFor is terminate with the cause of the kill: a try killed
// because the Execution API is unreachable gets the shorter grace that
// its cause carries (see APIUnreachableError).
func (p *proc) terminateFor(cause error) {
	p.termOnce.Do(func() {
		var ue *APIUnreachableError
		if errors.As(cause, &ue) && ue.Grace > 0 && ue.Grace < p.grace {
			p.termGrace = ue.Grace
		}
		close(p.term)
	})
}

// killer carries out terminate.
func (p *proc) killer() {
	defer p.wg.Done()
	select {
	case <-p.done:
		return
	case <-p.term:
	}
	p.kill(syscall.SIGTERM)
	grace := p.grace
	if p.termGrace > 0 {
		grace = p.termGrace // written before term was closed
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		p.kill(syscall.SIGKILL)
	}
}

// kill sends sig to the process's group and session; a forked process
// may not have made its session yet (the zygote answers right after the
// fork), so it gets sig by pid too.
func (p *proc) kill(sig syscall.Signal) {
	killTree(p.pgid, sig)
	if p.forked {
		_ = syscall.Kill(p.pgid, sig)
	}
}

// wait waits for the process and every goroutine of p.
func (p *proc) wait() {
	<-p.done
	p.wg.Wait()
}

// waitOrKill waits for the process; when ctx ends first it kills the group
// and returns ctx's cause.
func (p *proc) waitOrKill(ctx context.Context) (killed error) {
	select {
	case <-p.done:
	case <-ctx.Done():
		killed = context.Cause(ctx)
		p.terminateFor(killed)
	}
	p.wait()
	return killed
}

func (p *proc) exitCode() int {
	if p.exitErr == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(p.exitErr, &ee) {
		return ee.ExitCode()
	}
	var fe *forkExit
	if errors.As(p.exitErr, &fe) {
		return fe.ws.ExitStatus()
	}
	return -1
}

// exitStatus describes how the process ended: "exit code 3", "killed by
// signal killed".
func (p *proc) exitStatus() string {
	var ee *exec.ExitError
	if errors.As(p.exitErr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "killed by signal " + ws.Signal().String()
		}
		return fmt.Sprintf("exit code %d", ee.ExitCode())
	}
	var fe *forkExit
	if errors.As(p.exitErr, &fe) {
		if fe.ws.Signaled() {
			return "killed by signal " + fe.ws.Signal().String()
		}
		return fmt.Sprintf("exit code %d", fe.ws.ExitStatus())
	}
	if p.exitErr != nil {
		return p.exitErr.Error()
	}
	return "exit code 0"
}

// readLines calls fn for each line of r (without its newline); lines longer
// than maxLineDefault are split.
func readLines(r io.Reader, fn func(string)) {
	br := bufio.NewReaderSize(r, 4096)
	var buf []byte
	for {
		chunk, isPrefix, err := br.ReadLine()
		if err != nil {
			if len(buf) > 0 {
				fn(string(buf))
			}
			return
		}
		buf = append(buf, chunk...)
		if isPrefix && len(buf) < maxLineDefault {
			continue
		}
		fn(string(buf))
		buf = buf[:0]
	}
}

// tail keeps the last max bytes of lines, for error messages.
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, line...)
	t.b = append(t.b, '\n')
	if len(t.b) > t.max {
		t.b = append([]byte(nil), t.b[len(t.b)-t.max:]...)
	}
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}

// lookPath finds program as exec would run it from dir.
func lookPath(program, dir string) (string, error) {
	if !strings.Contains(program, "/") {
		return exec.LookPath(program)
	}
	if !filepath.IsAbs(program) && dir != "" {
		program = filepath.Join(dir, program)
	}
	st, err := os.Stat(program)
	if err != nil {
		return "", err
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%s is not executable", program)
	}
	return program, nil
}
