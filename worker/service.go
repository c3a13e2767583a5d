package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Service is a long-running helper process that the worker runs beside its
// tasks (e.g. a fork server, a local proxy, a cache): started
// with the worker, restarted whenever it exits (after RestartDelay, doubled
// on each exit that comes sooner than serviceStableAfter after its start,
// up to serviceMaxRestartDelay), and stopped (SIGTERM to its process group,
// SIGKILL after KillGrace) when the worker stops, after its tasks. It gets
// SIGTERM too when the worker itself dies (Linux's parent-death signal),
// so a SIGKILLed worker leaves no service behind. Its output lines go to
// the worker's log.
type Service struct {
	// Name names it in the worker's log; required, unique.
	Name string
	// Command is its program and arguments; required.
	Command []string
	// Env is added to the worker's environment for it.
	Env map[string]string
	// Dir is its working directory; default the worker's.
	Dir string
	// RestartDelay is the wait before the first restart after an exit;
	// default 1s.
	RestartDelay time.Duration
}

const (
	serviceRestartDelayDefault = time.Second
	serviceMaxRestartDelay     = 30 * time.Second
	// serviceStableAfter: a service that ran this long before it exited is
	// restarted after RestartDelay again, not after a doubled delay.
	serviceStableAfter = 10 * time.Second
)

func (s Service) validate() error {
	if strings.TrimSpace(s.Name) == "" {
		return errors.New("service with no name")
	}
	if len(s.Command) == 0 || strings.TrimSpace(s.Command[0]) == "" {
		return fmt.Errorf("service %q: no command", s.Name)
	}
	if s.RestartDelay < 0 {
		return fmt.Errorf("service %q: restart delay %s is negative", s.Name, s.RestartDelay)
	}
	return nil
}

// serviceRunner supervises one Service; run is its only goroutine (and the
// output copying of exec.Cmd, which Wait waits for).
type serviceRunner struct {
	svc       Service
	killGrace time.Duration
	log       *slog.Logger
	cancel    context.CancelFunc
	done      chan struct{}

	mu     sync.Mutex
	pid    int
	starts int
}

// startServices starts a runner per service; stopServices stops them.
func (w *Worker) startServices() {
	for _, s := range w.cfg.Services {
		ctx, cancel := context.WithCancel(context.Background())
		r := &serviceRunner{svc: s, killGrace: w.cfg.KillGrace, log: w.log.With("service", s.Name),
			cancel: cancel, done: make(chan struct{})}
		if r.svc.RestartDelay <= 0 {
			r.svc.RestartDelay = serviceRestartDelayDefault
		}
		w.services = append(w.services, r)
		go r.run(ctx)
	}
}

// stopServices stops every service and waits for them to exit.
func (w *Worker) stopServices() {
	for _, r := range w.services {
		r.cancel()
	}
	for _, r := range w.services {
		<-r.done
	}
}

// current is the service's running process id (0 when none) and how many
// times it was started.
func (r *serviceRunner) current() (pid, starts int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pid, r.starts
}

func (r *serviceRunner) run(ctx context.Context) {
	defer close(r.done)
	keepRestarting(ctx, r.svc.RestartDelay, serviceMaxRestartDelay, r.once, func(err error, after time.Duration) {
		r.log.Warn("service exited; restarting it", "err", err, "after", after)
	})
}

// keepRestarting runs once until ctx ends, waiting between runs: base
// after a run that lasted serviceStableAfter or more, else twice the last
// wait, up to the larger of ceiling and base. exited is told each end.
func keepRestarting(ctx context.Context, base, ceiling time.Duration, once func(context.Context) error, exited func(err error, after time.Duration)) {
	delay := base
	for {
		began := time.Now()
		err := once(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) >= serviceStableAfter {
			delay = base
		}
		exited(err, delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, max(ceiling, base))
	}
}

// once runs the service until it exits or ctx ends (then it stops it).
func (r *serviceRunner) once(ctx context.Context) error {
	// The parent-death signal comes when the thread that started the
	// process ends: this goroutine keeps its thread until the process
	// exited.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	cmd := exec.Command(r.svc.Command[0], r.svc.Command[1:]...)
	cmd.Env = os.Environ()
	for k, v := range r.svc.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Dir = r.svc.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	cmd.Stdout = &lineLog{log: r.log, level: slog.LevelInfo}
	cmd.Stderr = &lineLog{log: r.log, level: slog.LevelWarn}
	if err := cmd.Start(); err != nil {
		return err
	}
	r.mu.Lock()
	r.pid = cmd.Process.Pid
	r.starts++
	n := r.starts
	r.mu.Unlock()
	r.log.Info("service started", "pid", cmd.Process.Pid, "start", n)
	defer func() {
		r.mu.Lock()
		r.pid = 0
		r.mu.Unlock()
	}()

	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		return err
	case <-ctx.Done():
	}
	pgid := cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	t := time.NewTimer(r.killGrace)
	defer t.Stop()
	select {
	case <-waited:
	case <-t.C:
		r.log.Warn("service did not exit after SIGTERM; killing it", "grace", r.killGrace)
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-waited
	}
	r.log.Info("service stopped")
	return ctx.Err()
}

// lineLog writes each line written to it to a logger.
type lineLog struct {
	log   *slog.Logger
	level slog.Level
	buf   []byte
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		if line := strings.TrimRight(string(l.buf[:i]), "\r"); line != "" {
			l.log.Log(context.Background(), l.level, line)
		}
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) > 64<<10 { // a line without end: log what came
		l.log.Log(context.Background(), l.level, string(l.buf))
		l.buf = l.buf[:0]
	}
	return len(p), nil
}
