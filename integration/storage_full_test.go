package integration

import (
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/client"
	"github.com/taskwire/taskwire/internal/testbin"
)

// mountTmpfs mounts a tmpfs of size (e.g. "64m") on a new directory and
// unmounts it when the test ends; it skips the test when it cannot (not
// root).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mount a tmpfs (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file in dir leaving about leave bytes free on its disk.
func fill(t *testing.T, dir string, leave int64) string {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * st.Bsize
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for n := free - leave; n > 0; n -= int64(len(buf)) {
		if _, err := f.Write(buf[:min(int64(len(buf)), n)]); err != nil {
			t.Fatalf("fill: %v", err)
		}
	}
	return path
}

// Issue 17, item 3: with the store's disk full, submits are refused at
// once with 507 and a message (not 500 after a 10s hang), /readyz says
// why, and once space is freed the executor takes work again without a
// restart; every accepted task runs exactly once.
func TestStorageFullRefusesThenRecovers(t *testing.T) {
	parallel(t, timed)
	data := mountTmpfs(t, "96m")
	b := buildAll(t)
	addr, natsAddr := testbin.FreeAddr(t), testbin.FreeAddr(t)
	ex := testbin.Start(t, "executor", b.executor, nil, "serve", "--data-dir", filepath.Join(data, "nats"),
		"--listen", addr, "--nats-listen", natsAddr, "--zombie-threshold", "5s", "--log-level", "debug")
	url := "http://" + addr
	waitHealthy(t, url, ex, nil)
	api, err := client.New(client.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, bins: b, apiURL: url, api: api, exec: ex, dir: t.TempDir(), natsURL: "nats://" + natsAddr}
	c.startWorker(workerOpts{queues: "default"})
	out := c.path("runs")
	spec := activity.TaskSpec{Queue: "default", Entrypoint: sh(sideEffect(out))}

	var ids []string
	for range 5 {
		ids = append(ids, c.submit(spec).ID)
	}
	c.waitFinished(len(ids), time.Minute)

	filler := fill(t, data, 4<<20)
	testbin.Eventually(t, 10*time.Second, "/readyz to say storage", func() bool {
		status, body := httpGet(t, url+"/readyz")
		return status == http.StatusServiceUnavailable && strings.Contains(body, "storage")
	})
	for range 3 {
		start := time.Now()
		_, err := api.Submit(t.Context(), spec)
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusInsufficientStorage || !strings.Contains(ae.Detail, "free") {
			t.Fatalf("submit with the disk full: %v, want 507 saying how much is free", err)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("the refused submit took %s", took)
		}
	}
	if st, _ := httpGet(t, url+"/healthz"); st != http.StatusOK {
		t.Errorf("/healthz %d while the disk is full: the process is alive", st)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, 10*time.Second, "/readyz to be ready again", func() bool {
		status, _ := httpGet(t, url+"/readyz")
		return status == http.StatusOK
	})
	for range 5 {
		ids = append(ids, c.submit(spec).ID)
	}
	c.waitFinished(len(ids), time.Minute)
	checkSucceededOnce(t, c, ids, out)
}
