package worker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// The state directory holds one file per running task, "pgid-<pgid>", with
// the process group id, the leader's start time (in clock ticks since boot,
// from /proc) and the task instance id. A worker killed with SIGKILL cannot
// kill its tasks (Pdeathsig reaches only the direct children), so the next
// worker started on the same StateDir kills the groups still recorded there.
// A flock on "lock" keeps two live workers off one directory.

func (w *Worker) openStateDir() (*os.File, error) {
	dir := w.cfg.StateDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("state dir %s is in use by another worker", dir)
		}
		return nil, fmt.Errorf("state dir lock: %w", err)
	}
	w.killOrphans(dir)
	return lock, nil
}

func (w *Worker) closeStateDir() {
	if w.lock != nil {
		_ = w.lock.Close()
		w.lock = nil
	}
}

// killOrphans kills the process groups (and the rest of their sessions: see
// session.go) a previous worker recorded.
func (w *Worker) killOrphans(dir string) {
	files, _ := filepath.Glob(filepath.Join(dir, "pgid-*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		fields := strings.Fields(string(b))
		if len(fields) < 2 {
			_ = os.Remove(f)
			continue
		}
		pgid, err1 := strconv.Atoi(fields[0])
		start, err2 := strconv.ParseUint(fields[1], 10, 64)
		if err1 != nil || err2 != nil || pgid <= 1 {
			_ = os.Remove(f)
			continue
		}
		// While any member of a group lives, its id is not reused. A live
		// process with that pid but another start time means the group is
		// gone and the number reused: leave it alone.
		if st, ok := procStartTime(pgid); !ok || st == start {
			alive := syscall.Kill(-pgid, 0) == nil || len(sessionMembers(pgid)) > 0
			killTree(pgid, syscall.SIGKILL)
			if alive {
				ti := ""
				if len(fields) > 2 {
					ti = fields[2]
				}
				w.log.Warn("killed orphaned task processes of a previous worker", "pgid", pgid, "ti_id", ti)
			}
		}
		_ = os.Remove(f)
	}
}

// recordProcess notes a running task's group; it returns the file to remove
// when the task ends ("" without a StateDir).
func (w *Worker) recordProcess(pgid int, tiID string) string {
	if w.cfg.StateDir == "" {
		return ""
	}
	start, _ := procStartTime(pgid)
	f := filepath.Join(w.cfg.StateDir, "pgid-"+strconv.Itoa(pgid))
	if err := os.WriteFile(f, fmt.Appendf(nil, "%d %d %s\n", pgid, start, tiID), 0o600); err != nil {
		w.log.Warn("record task process group", "pgid", pgid, "err", err)
		return ""
	}
	return f
}

func (w *Worker) forgetProcess(f string) {
	if f != "" {
		_ = os.Remove(f)
	}
}

// procStartTime returns field 22 of /proc/<pid>/stat.
func procStartTime(pid int) (uint64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	fields := strings.Fields(s[i+1:])
	// fields[0] is field 3 (state); start time is field 22.
	if len(fields) < 20 {
		return 0, false
	}
	v, err := strconv.ParseUint(fields[19], 10, 64)
	return v, err == nil
}
