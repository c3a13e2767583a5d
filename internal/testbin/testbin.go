// Package testbin builds taskwire's binaries for tests and runs them as real
// processes. Binaries are built once per test process (with -race when the
// test binary has it, except for task runtimes: see Mode; and with the
// taskwire_testhooks build tag that compiles in the test-only fault
// injection), into a directory removed by Cleanup.
package testbin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/taskwire/taskwire/internal/freeport"
)

var (
	mu    sync.Mutex
	dir   string
	built = map[string]string{}
)

// moduleRoot finds the directory holding go.mod above this source file.
func moduleRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("testbin: no caller")
	}
	d := filepath.Dir(file)
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", errors.New("testbin: go.mod not found")
		}
		d = parent
	}
}

// Mode is how Build compiles a binary.
type Mode int

const (
	// AsTest compiles with -race when the test binary has it: the
	// services under test (executor, worker, triggerer), whose concurrency
	// the race detector checks in every end-to-end test.
	AsTest Mode = iota
	// NoRace compiles without -race: task runtimes, which a worker starts
	// once per try (thousands in a storm). A -race Go binary costs about
	// ten times the CPU to start (≈ 60 ms against 5 ms on 2 cores) and
	// four times the memory; a runtime's own concurrency is race-checked
	// by its package's tests.
	NoRace
)

func (m Mode) race() bool { return raceEnabled && m == AsTest }

// Build compiles the main package at pkg (relative to the module root, e.g.
// "./cmd/worker") once and returns the binary's path.
func Build(pkg string) (string, error) {
	paths, err := BuildAll(AsTest, pkg)
	if err != nil {
		return "", err
	}
	return paths[0], nil
}

// BuildAll compiles the main packages pkgs in mode, those not built yet
// with one go build (which compiles and links them in parallel), and
// returns their paths in the order given. The binaries' base names must
// differ.
func BuildAll(mode Mode, pkgs ...string) ([]string, error) {
	mu.Lock()
	defer mu.Unlock()
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "taskwire-bin-"); err != nil {
			return nil, err
		}
	}
	sub := "race"
	if !mode.race() {
		sub = "norace"
	}
	key := func(pkg string) string { return sub + " " + pkg }
	var missing []string
	for _, pkg := range pkgs {
		if _, ok := built[key(pkg)]; !ok && !slices.Contains(missing, pkg) {
			missing = append(missing, pkg)
		}
	}
	if len(missing) > 0 {
		out := filepath.Join(dir, sub) + string(filepath.Separator)
		// The test hooks (fault injection; cli/testhooks.go) are compiled
		// into test binaries only.
		args := []string{"build", "-tags", "taskwire_testhooks", "-o", out}
		if mode.race() {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, missing...)...)
		cmd.Dir = root
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("go build %s: %w\n%s", strings.Join(missing, " "), err, stderr.String())
		}
		for _, pkg := range missing {
			built[key(pkg)] = filepath.Join(out, binName(pkg))
		}
	}
	paths := make([]string, len(pkgs))
	for i, pkg := range pkgs {
		paths[i] = built[key(pkg)]
	}
	return paths, nil
}

// binName is the name go build gives pkg's binary: the last element of
// its path, or the one before a major version's (".../nats-server/v2").
func binName(pkg string) string {
	base := filepath.Base(pkg)
	if len(base) > 1 && base[0] == 'v' && strings.Trim(base[1:], "0123456789") == "" {
		return filepath.Base(filepath.Dir(pkg))
	}
	return base
}

// MustBuild is Build for tests.
func MustBuild(t testing.TB, pkg string) string {
	t.Helper()
	p, err := Build(pkg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// MustBuildAll is BuildAll for tests.
func MustBuildAll(t testing.TB, mode Mode, pkgs ...string) []string {
	t.Helper()
	paths, err := BuildAll(mode, pkgs...)
	if err != nil {
		t.Fatal(err)
	}
	return paths
}

// Cleanup removes the built binaries; call it from TestMain.
func Cleanup() {
	mu.Lock()
	defer mu.Unlock()
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
	dir, built = "", map[string]string{}
}

// FreeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago, from outside the kernel's ephemeral range (see package freeport).
func FreeAddr(t testing.TB) string {
	t.Helper()
	addr, err := freeport.Addr("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// Proc is a running process whose output is kept for the test log.
type Proc struct {
	Name string
	Cmd  *exec.Cmd

	out  *SyncBuffer
	done chan struct{}
	err  error
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers and readers.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// raceEnv stops the race detector's one-second sleep at exit in the -race
// binaries the tests run (and in their children, which inherit it): a task
// process would otherwise linger past its final message.
const raceEnv = "GORACE=atexit_sleep_ms=0"

// Start runs bin with args (and extra env) as its own process group. At test
// cleanup it is stopped (SIGTERM, then SIGKILL) and, if the test failed, its
// output is logged.
func Start(t testing.TB, name, bin string, env []string, args ...string) *Proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(append(os.Environ(), raceEnv), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &Proc{Name: name, Cmd: cmd, out: &SyncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	test, proc := top(t), procName(bin, args...)
	go func() {
		p.err = cmd.Wait()
		record(test, proc, cmd.ProcessState)
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Stop(10 * time.Second)
		if t.Failed() {
			t.Logf("---- output of %s (%s) ----\n%s", name, strings.Join(args, " "), p.Output())
		}
	})
	return p
}

// Output returns what the process printed so far.
func (p *Proc) Output() string { return p.out.String() }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the process's exit error, once Done is closed.
func (p *Proc) Err() error { return p.err }

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) { _ = p.Cmd.Process.Signal(sig) }

// Kill SIGKILLs the process (not its group: children are left to their fate)
// and waits for it.
func (p *Proc) Kill() {
	_ = p.Cmd.Process.Kill()
	<-p.done
}

// Stop sends SIGTERM and waits up to grace, then SIGKILLs the process group.
// It reports whether the process exited within grace.
func (p *Proc) Stop(grace time.Duration) bool {
	select {
	case <-p.done:
		return true
	default:
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return true
	case <-time.After(grace):
		_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		return false
	}
}

// Run runs bin to completion and returns its combined output.
func Run(ctx context.Context, bin string, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(append(os.Environ(), raceEnv), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Alive reports whether pid names a live (not zombie) process.
func Alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// Field 3 is the state; the command name in field 2 may hold spaces.
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}

// Eventually polls cond every 20ms until it is true or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	EventuallyEvery(t, timeout, 20*time.Millisecond, what, cond)
}

// EventuallyEvery polls cond every interval until it is true or timeout
// passes: for a condition that costs the processes under test more than a
// look (a count over thousands of records), and a wait of many seconds.
func EventuallyEvery(t testing.TB, timeout, interval time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(interval)
	}
}
