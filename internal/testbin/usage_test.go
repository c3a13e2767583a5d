package testbin

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestBinName(t *testing.T) {
	for pkg, want := range map[string]string{
		"./cmd/worker":                      "worker",
		"github.com/nats-io/nats-server/v2": "nats-server",
		"example.com/x/v10":                 "x",
		"./examples/v":                      "v",
		"./cmd/vx":                          "vx",
	} {
		if got := binName(pkg); got != want {
			t.Errorf("binName(%q) = %q, want %q", pkg, got, want)
		}
	}
}

func TestProcName(t *testing.T) {
	for _, c := range []struct {
		bin  string
		args []string
		want string
	}{
		{"/tmp/taskwire-bin-1/race/worker", []string{"--queues", "a"}, "worker(race)"},
		{"/tmp/taskwire-bin-1/norace/worker", nil, "worker"},
		{"/venv/bin/airflow", []string{"scheduler"}, "airflow scheduler"},
		{"/venv/bin/airflow", []string{"api-server"}, "airflow api-server"},
		{"/venv/bin/airflow", nil, "airflow"},
		{"/bin/sh", []string{"-c", "true"}, "sh"},
	} {
		if got := procName(c.bin, c.args...); got != c.want {
			t.Errorf("procName(%q, %q) = %q, want %q", c.bin, c.args, got, c.want)
		}
	}
}

// The CPU a test's processes spent (with their waited-for children) is in
// the report, under the test and the binary's name.
func TestCPUReportCountsChildren(t *testing.T) {
	t.Run("busy", func(t *testing.T) {
		Track(t)
		// A child of the shell spins a moment: its CPU counts in the
		// shell's, as a task's counts in its worker's.
		p := Start(t, "spin", "/bin/sh", nil, "-c", `(i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done)`)
		select {
		case <-p.Done():
		case <-time.After(time.Minute):
			t.Fatal("the shell did not end")
		}
	})
	usageMu.Lock()
	u := usages["TestCPUReportCountsChildren"]
	usageMu.Unlock()
	if u == nil || u.procs != 1 || u.cpu <= 0 || u.byName["sh"] != u.cpu || u.ended.Before(u.began) {
		t.Fatalf("usage %+v", u)
	}
	var b bytes.Buffer
	WriteCPUReport(&b)
	if !strings.Contains(b.String(), "TestCPUReportCountsChildren") || !strings.Contains(b.String(), "sh ") ||
		!strings.Contains(b.String(), "the test process itself") {
		t.Fatalf("report:\n%s", b.String())
	}
}
