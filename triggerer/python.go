package triggerer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/execution"
	"github.com/taskwire/taskwire/trigger"
)

// pyRuntime is the Python trigger runtime: one child process (the Python
// SDK's taskwire.airflow_triggers, an asyncio loop running many Airflow
// trigger classes at once) that runs this triggerer's "airflow" triggers.
// The triggerer keeps claiming, timing out and publishing them as it does
// its built-in kinds; the process only runs them. The protocol is JSON
// lines: the triggerer writes {"op":"start","id","classpath","kwargs"} and
// {"op":"stop","id"} on its stdin; it writes {"id","event"},
// {"id","end","xcoms"} (a TaskSuccessEvent, TaskFailedEvent or
// TaskSkippedEvent: the task ends in state end) or {"id","error"} on its
// stdout, once per trigger. When the process dies,
// it is started again (after restartDelay) and given every trigger it was
// running.
//
// A running trigger may also ask (pycomms.go): {"op":"acquire","req","id",
// "key","hold"} waits for a token of the rate limit key (the shared
// buckets of the built-in kinds) and, with hold, keeps an in-flight place
// until {"op":"release","req"}; {"op":"comms","req","id","msg"} is an
// Airflow message of the trigger runner (GetConnection, GetVariable,
// GetXCom, MaskSecret) answered through the Execution API with the
// trigger's token. Answers are {"op":"reply","req","body"} or
// {"op":"reply","req","error"} on stdin.
type pyRuntime struct {
	command []string
	log     *slog.Logger
	limiter trigger.Limiter   // nil: rate_limit() does not wait
	api     *execution.Client // nil: no connections or variables
	masks   *masker

	ctx    context.Context // ends at close: cancels the requests
	cancel context.CancelFunc
	reqWG  sync.WaitGroup // request goroutines

	mu      sync.Mutex
	live    map[string]*pyTrigger
	stdin   io.WriteCloser
	proc    *exec.Cmd
	gen     uint64 // of the process running now: requests are answered to it only
	leases  map[leaseKey]lease
	closed  bool
	restart *time.Timer
	wg      sync.WaitGroup
}

type pyTrigger struct {
	t      activity.Trigger
	fire   func(trigger.Event)
	ctx    context.Context // ends when the trigger stops or fires
	cancel context.CancelFunc
	tc     *execution.TaskClient // nil without an Execution API or token
}

// restartDelay is the pause before a dead Python trigger runtime is
// started again.
const restartDelay = time.Second

func newPyRuntime(command []string, limiter trigger.Limiter, api *execution.Client, log *slog.Logger) *pyRuntime {
	ctx, cancel := context.WithCancel(context.Background())
	return &pyRuntime{command: command, limiter: limiter, api: api, masks: &masker{},
		log: log.With("component", "python-triggers"), live: map[string]*pyTrigger{}, leases: map[leaseKey]lease{},
		ctx: ctx, cancel: cancel}
}

type pyStart struct {
	Op        string `json:"op"`
	ID        string `json:"id"`
	Classpath string `json:"classpath,omitempty"`
	Kwargs    any    `json:"kwargs,omitempty"`
	// RateKey is the trigger's rate_key: what rate_limit() takes by default.
	RateKey string `json:"rate_key,omitempty"`
}

// startLine is the start message of lt.
func startLine(id string, lt *pyTrigger) pyStart {
	cp, _ := lt.t.Kwargs["classpath"].(string)
	key, _ := lt.t.Kwargs["rate_key"].(string)
	return pyStart{Op: "start", ID: id, Classpath: cp, Kwargs: lt.t.Kwargs["kwargs"], RateKey: key}
}

// Start runs t in the process, starting it when it is not running.
func (p *pyRuntime) Start(t activity.Trigger, fire func(trigger.Event)) (func(), error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errors.New("python trigger runtime stopped")
	}
	lt := &pyTrigger{t: t, fire: fire}
	lt.ctx, lt.cancel = context.WithCancel(p.ctx)
	if p.api != nil && t.Token != "" {
		lt.tc = p.api.Task(t.TIID, t.Token)
	}
	p.live[t.ID] = lt
	if p.proc == nil && p.restart == nil {
		if err := p.spawnLocked(); err != nil {
			delete(p.live, t.ID)
			lt.cancel()
			return nil, err
		}
	} else if p.proc != nil {
		p.sendLocked(startLine(t.ID, lt))
	}
	id := t.ID
	return func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.live[id] != lt {
			return
		}
		p.forgetLocked(id, lt)
		if p.proc != nil {
			p.sendLocked(pyStart{Op: "stop", ID: id})
		}
	}, nil
}

// forgetLocked drops a trigger that stopped or fired: its requests end
// and its rate limit leases are given back.
func (p *pyRuntime) forgetLocked(id string, lt *pyTrigger) {
	delete(p.live, id)
	lt.cancel()
	for k, l := range p.leases {
		if l.id == id {
			delete(p.leases, k)
			p.goRelease(l) // KV writes: not under p.mu
		}
	}
}

// sendLocked writes one line to the process; a failed write is the
// process dying, which the reader notices.
func (p *pyRuntime) sendLocked(m any) {
	b, _ := json.Marshal(m)
	if _, err := p.stdin.Write(append(b, '\n')); err != nil {
		p.log.Debug("write to python trigger runtime", "err", err)
	}
}

// spawnLocked starts the process and gives it every live trigger.
func (p *pyRuntime) spawnLocked() error {
	cmd := exec.Command(p.command[0], p.command[1:]...)
	cmd.Stderr = &logWriter{log: p.log, masks: p.masks}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start python trigger runtime %q: %w", p.command, err)
	}
	p.gen++
	p.proc, p.stdin = cmd, stdin
	p.log.Info("python trigger runtime started", "pid", cmd.Process.Pid, "triggers", len(p.live))
	for id, lt := range p.live {
		p.sendLocked(startLine(id, lt))
	}
	p.wg.Add(1)
	go p.read(cmd, stdout, p.gen)
	return nil
}

// read delivers the process's events until its stdout ends, then reaps it
// and, unless closed, starts it again when triggers remain.
func (p *pyRuntime) read(cmd *exec.Cmd, stdout io.Reader, gen uint64) {
	defer p.wg.Done()
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), activity.MaxSizeDefault)
	for sc.Scan() {
		var m struct {
			pyRequest
			Event any            `json:"event"`
			Error string         `json:"error"`
			End   string         `json:"end"`
			XComs map[string]any `json:"xcoms"`
		}
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil || m.ID == "" && m.Op != "release" {
			p.log.Warn("python trigger runtime: bad line", "line", truncate(sc.Bytes(), 200))
			continue
		}
		if m.Op != "" {
			p.request(gen, m.pyRequest)
			continue
		}
		p.mu.Lock()
		lt := p.live[m.ID]
		if lt != nil {
			p.forgetLocked(m.ID, lt)
		}
		p.mu.Unlock()
		if lt == nil {
			continue
		}
		switch end := activity.State(m.End); {
		case m.Error != "":
			lt.fire(trigger.Event{Err: m.Error})
		case end == activity.StateSuccess || end == activity.StateFailed || end == activity.StateSkipped:
			lt.fire(trigger.Event{Payload: m.Event, End: end, XComs: m.XComs})
		case end != "":
			lt.fire(trigger.Event{Err: fmt.Sprintf("trigger %s ended the task in state %q: want success, failed or skipped", lt.t.ID, m.End)})
		default:
			lt.fire(trigger.Event{Payload: m.Event})
		}
	}
	err := cmd.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc == cmd {
		p.proc, p.stdin = nil, nil
	}
	for k, l := range p.leases {
		if k.gen == gen {
			delete(p.leases, k)
			p.goRelease(l)
		}
	}
	if p.closed {
		return
	}
	p.log.Warn("python trigger runtime exited", "err", err, "triggers", len(p.live))
	if len(p.live) > 0 && p.restart == nil {
		p.restart = time.AfterFunc(restartDelay, func() {
			var failed []*pyTrigger
			var err error
			p.mu.Lock()
			p.restart = nil
			if !p.closed && p.proc == nil && len(p.live) > 0 {
				if err = p.spawnLocked(); err != nil {
					p.log.Error("restart python trigger runtime", "err", err)
					for id, lt := range p.live {
						delete(p.live, id)
						failed = append(failed, lt)
					}
				}
			}
			for _, lt := range failed {
				lt.cancel()
			}
			p.mu.Unlock()
			for _, lt := range failed {
				lt.fire(trigger.Event{Err: err.Error()})
			}
		})
	}
}

// close stops the process (its triggers were halted and handed back) and
// waits for it.
func (p *pyRuntime) close(ctx context.Context) {
	p.mu.Lock()
	p.closed = true
	if p.restart != nil {
		p.restart.Stop()
		p.restart = nil
	}
	proc := p.proc
	if p.stdin != nil {
		p.stdin.Close() // EOF: the runtime cancels its triggers and exits
	}
	p.mu.Unlock()
	p.cancel() // requests waiting for a token or the Execution API end
	done := make(chan struct{})
	go func() { p.wg.Wait(); p.reqWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
	}
	if proc != nil && proc.Process != nil {
		_ = syscall.Kill(-proc.Process.Pid, syscall.SIGKILL)
	}
	<-done
}

// logWriter logs the runtime's stderr, line by line, masking the
// secrets the triggers read (masks).
type logWriter struct {
	log   *slog.Logger
	masks *masker
	buf   []byte
}

func (w *logWriter) Write(b []byte) (int, error) {
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.log.Info("python trigger runtime", "stderr", w.masks.apply(string(w.buf[:i])))
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 64<<10 {
		w.log.Info("python trigger runtime", "stderr", w.masks.apply(string(w.buf)))
		w.buf = w.buf[:0]
	}
	return len(b), nil
}
