package testbin

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"
)

// CPUReportEnv, set to true, makes a package that calls WriteCPUReport
// print where the CPU of its run went (see WriteCPUReport).
const CPUReportEnv = "TASKWIRE_TEST_CPU_REPORT"

// usage is what one top-level test cost.
type usage struct {
	began, ended time.Time
	// cpu is the user + system time of the processes the test ran
	// through Start, Run or Account (each with its waited-for
	// descendants: a worker's task processes count in the worker's);
	// procs counts them, and byName splits cpu by process name.
	cpu    time.Duration
	procs  int
	byName map[string]time.Duration
}

var (
	usageMu sync.Mutex
	usages  = map[string]*usage{}
	// byProc is the CPU of every recorded process by name, over all
	// tests, and its system share.
	byProc = map[string]*procCPU{}
)

type procCPU struct{ cpu, sys time.Duration }

// top is the name of t's top-level test.
func top(t testing.TB) string {
	name, _, _ := strings.Cut(t.Name(), "/")
	return name
}

func usageOf(test string) *usage {
	u := usages[test]
	if u == nil {
		u = &usage{byName: map[string]time.Duration{}}
		usages[test] = u
	}
	return u
}

// Track times t (from now until its later cleanups have run) for the CPU
// report, and logs, when the report is asked for, what t's processes
// cost. Call it once the test has its turn (after any wait for a place),
// before it starts processes.
func Track(t testing.TB) {
	name := top(t)
	usageMu.Lock()
	usageOf(name).began = time.Now()
	usageMu.Unlock()
	// Cleanups run last-in first-out: this one after those of the
	// processes t starts, which stop them.
	t.Cleanup(func() {
		usageMu.Lock()
		u := usageOf(name)
		u.ended = time.Now()
		cpu, procs := u.cpu, u.procs
		usageMu.Unlock()
		if CPUReport() {
			t.Logf("cpu: %.1f CPU-s in %d child processes, %s", cpu.Seconds(), procs, u.ended.Sub(u.began).Round(time.Millisecond))
		}
	})
}

// procName is how the report names a process running bin with args: its
// base name, marked when bin was built with -race; airflow's with its
// subcommand (one program, several services: scheduler, dag-processor,
// api-server).
func procName(bin string, args ...string) string {
	if filepath.Base(filepath.Dir(bin)) == "race" {
		return filepath.Base(bin) + "(race)"
	}
	if name := filepath.Base(bin); name == "airflow" && len(args) > 0 {
		return name + " " + args[0]
	}
	return filepath.Base(bin)
}

// cpuOf is the user + system time in ps, and the system time alone (nil:
// none).
func cpuOf(ps *os.ProcessState) (cpu, sys time.Duration) {
	if ps == nil {
		return 0, 0
	}
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0, 0
	}
	sys = time.Duration(ru.Stime.Nano())
	return time.Duration(ru.Utime.Nano()) + sys, sys
}

// record adds an ended process's CPU to test's usage ("" when the caller
// gave no test: counted only in the report's total of children).
func record(test, proc string, ps *os.ProcessState) {
	if test == "" {
		return
	}
	usageMu.Lock()
	defer usageMu.Unlock()
	u := usageOf(test)
	d, sys := cpuOf(ps)
	u.cpu += d
	u.procs++
	u.byName[proc] += d
	p := byProc[proc]
	if p == nil {
		p = &procCPU{}
		byProc[proc] = p
	}
	p.cpu += d
	p.sys += sys
}

// Account adds the CPU of a process t ran itself (exec.Cmd, after Wait)
// to t's line of the CPU report.
func Account(t testing.TB, proc string, ps *os.ProcessState) { record(top(t), proc, ps) }

// CPUReport reports whether $TASKWIRE_TEST_CPU_REPORT asks for the report.
func CPUReport() bool {
	v := os.Getenv(CPUReportEnv)
	return v == "1" || v == "true"
}

// WriteCPUReport writes, per top-level test that ran processes (the
// costliest first), its wall time (from Track; "-" without), the CPU of
// its child processes and their split by name; then the test process's
// own CPU (its in-process servers, clients and the race detector's
// share of them) and the CPU of all its children, tracked or not. Call it
// from TestMain after m.Run.
func WriteCPUReport(w io.Writer) {
	usageMu.Lock()
	defer usageMu.Unlock()
	names := make([]string, 0, len(usages))
	var tracked time.Duration
	for n, u := range usages {
		names = append(names, n)
		tracked += u.cpu
	}
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(usages[b].cpu, usages[a].cpu), strings.Compare(a, b))
	})
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "test\twall s\tchildren CPU s\tprocs\tby process (CPU s)\t")
	for _, n := range names {
		u := usages[n]
		wall := "-"
		if !u.began.IsZero() && !u.ended.IsZero() {
			wall = fmt.Sprintf("%.1f", u.ended.Sub(u.began).Seconds())
		}
		procs := make([]string, 0, len(u.byName))
		for p := range u.byName {
			procs = append(procs, p)
		}
		slices.SortFunc(procs, func(a, b string) int { return cmp.Compare(u.byName[b], u.byName[a]) })
		var parts []string
		for _, p := range procs {
			parts = append(parts, fmt.Sprintf("%s %.1f", p, u.byName[p].Seconds()))
		}
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t%d\t%s\t\n", n, wall, u.cpu.Seconds(), u.procs, strings.Join(parts, ", "))
	}
	_ = tw.Flush()
	procs := make([]string, 0, len(byProc))
	for p := range byProc {
		procs = append(procs, p)
	}
	slices.SortFunc(procs, func(a, b string) int { return cmp.Compare(byProc[b].cpu, byProc[a].cpu) })
	parts := make([]string, 0, len(procs))
	for _, p := range procs {
		parts = append(parts, fmt.Sprintf("%s %.1f (%.1f)", p, byProc[p].cpu.Seconds(), byProc[p].sys.Seconds()))
	}
	fmt.Fprintf(w, "by process, all tests (CPU s, of it system): %s\n", strings.Join(parts, ", "))
	var self, children syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children)
	cpu := func(ru syscall.Rusage) float64 { return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds() }
	fmt.Fprintf(w, "children of tests, tracked: %.1f CPU-s; all children: %.1f CPU-s (system %.1f); the test process itself: %.1f CPU-s (system %.1f)\n",
		tracked.Seconds(), cpu(children), time.Duration(children.Stime.Nano()).Seconds(), cpu(self), time.Duration(self.Stime.Nano()).Seconds())
}
