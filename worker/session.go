package worker

import (
	"os"
	"strconv"
	"strings"
	"syscall"
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

// sessionMembers lists the live processes of session sid, from /proc.
func sessionMembers(sid int) []int {
	d, err := os.Open("/proc")
	if err != nil {
		return nil
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	var pids []int
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil || pid == sid {
			continue
		}
		if s, ok := getsid(pid); ok && s == sid {
			pids = append(pids, pid)
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
