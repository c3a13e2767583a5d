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

// procStartTime returns field 22 (start time) of /proc/<pid>/stat.
func procStartTime(pid int) (uint64, bool) {
	f, ok := procStatField(pid, 22)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseUint(f, 10, 64)
	return v, err == nil
}
