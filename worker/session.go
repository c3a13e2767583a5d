package worker

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// A task process starts a session of its own (setsid), so its process group
// and its session have its pid as id. A runtime may move its children into
// groups of their own (Airflow's supervisor puts each task process in a new
// group), but not out of the session without calling setsid itself, so the
// task's whole tree is found by its session: killTree signals the group and
// then every other process of the session.

// killTree sends sig to the process group sid and to every process whose
// session is sid. The kernel does not reuse a pid while a group or session
// of that id has a member, so sid names only the task's processes.
func killTree(sid int, sig syscall.Signal) {
	_ = syscall.Kill(-sid, sig)
	for _, pid := range sessionMembers(sid) {
		_ = syscall.Kill(pid, sig)
	}
}

// sessionMembers lists the live processes of session sid but sid, from
// /proc.
func sessionMembers(sid int) []int {
	return sessionsMembers(map[int]struct{}{sid: {}})
}

// sessionsMembers lists the live processes of the sessions sids but their
// leaders, from /proc.
func sessionsMembers(sids map[int]struct{}) []int {
	d, err := os.Open("/proc")
	if err != nil {
		return nil
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	var pids []int
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		if _, leader := sids[pid]; leader {
			continue
		}
		if s, ok := getsid(pid); ok {
			if _, in := sids[s]; in {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// getsid returns the session of process pid: one system call, where
// reading /proc/<pid>/stat takes three and a parse (sessionMembers asks it
// of every process of the machine, once per cold task).
func getsid(pid int) (int, bool) {
	s, _, errno := syscall.RawSyscall(syscall.SYS_GETSID, uintptr(pid), 0, 0)
	if errno != 0 {
		return 0, false
	}
	return int(s), true
}

// procSession returns field 6 (session) of /proc/<pid>/stat.
func procSession(pid int) (int, bool) {
	f, ok := procStatField(pid, 6)
	if !ok {
		return 0, false
	}
	v, err := strconv.Atoi(f)
	return v, err == nil
}

// procStatField returns field n (numbered from 1, as in proc(5)) of
// /proc/<pid>/stat, n ≥ 3: the fields after the command name, which is read
// up to its last ')' since it may hold spaces and parentheses.
func procStatField(pid, n int) (string, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", false
	}
	fields := strings.Fields(s[i+1:]) // fields[0] is field 3 (state)
	if len(fields) < n-2 {
		return "", false
	}
	return fields[n-3], true
}

// sweepDelay is how long after a task process ends the session scan for
// what it left in other process groups of its session runs (sessionSweeper).
const sweepDelay = 50 * time.Millisecond

// sessionSweeper kills, after a task process has ended, whatever it left in
// process groups of its session other than its own (its own group is
// killed at once). Finding those takes a scan of /proc, a getsid per
// process of the machine (≈ 0.2–0.35 ms of the worker's CPU per cold task
// on the 2-core machine, most of it the kernel listing /proc), so one scan
// serves every session that ended within sweepDelay of the first: under a
// stream of short tasks one scan per 50 ms, not one per task. A task's
// leftovers in other groups thus die within sweepDelay plus a scan of its
// end, not at once; its pid (the session's id) cannot be reused meanwhile
// while the session has a member, and could only be reused by a process
// that is not ours after the kernel went round the whole pid space.
type sessionSweeper struct {
	mu      sync.Mutex
	pending map[int]struct{}
	timer   *time.Timer
	// scans counts the scans done (for the tests).
	scans atomic.Int64
}

// add schedules the sweep of session sid.
func (s *sessionSweeper) add(sid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending == nil {
		s.pending = map[int]struct{}{}
	}
	s.pending[sid] = struct{}{}
	if s.timer == nil {
		s.timer = time.AfterFunc(sweepDelay, s.sweep)
	}
}

// sweep kills the members of the pending sessions, in one scan of /proc.
func (s *sessionSweeper) sweep() {
	s.mu.Lock()
	sids := s.pending
	s.pending, s.timer = nil, nil
	s.mu.Unlock()
	if len(sids) == 0 {
		return
	}
	s.scans.Add(1)
	for _, pid := range sessionsMembers(sids) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// flush sweeps now what is pending (the worker stopping).
func (s *sessionSweeper) flush() {
	s.mu.Lock()
	if s.timer != nil {
		s.timer.Stop()
	}
	s.mu.Unlock()
	s.sweep()
}
