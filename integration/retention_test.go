package integration

import (
	"bufio"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/client"
	"github.com/taskwire/taskwire/internal/testbin"
)

// Issue 17, item 6 (retention): finished records past the retention are
// exported, then deleted; unfinished ones stay whatever their age.
func TestFinishedRecordsAreExportedThenDeleted(t *testing.T) {
	exports := t.TempDir()
	c := newCluster(t, clusterOpts{extra: []string{"--record-retention", "3s", "--retention-interval", "300ms",
		"--record-export-dir", exports}})
	c.startWorker(workerOpts{})
	var done []string
	for range 3 {
		done = append(done, c.submit(activity.TaskSpec{Queue: "default", Entrypoint: sh("true")}).ID)
	}
	waiting := c.submit(activity.TaskSpec{Queue: "nobody-serves", Entrypoint: sh("true")})
	for _, id := range done {
		c.wait(id, time.Minute)
	}
	testbin.Eventually(t, 30*time.Second, "finished records to be deleted", func() bool {
		for _, id := range done {
			if _, err := c.api.Get(context.Background(), id); !errors.Is(err, client.ErrNotFound) {
				return false
			}
		}
		return true
	})
	if ti, err := c.api.Get(context.Background(), waiting.ID); err != nil || ti.State != activity.StateQueued {
		t.Errorf("the queued task: %v, %v; want kept, queued", ti, err)
	}
	files, _ := filepath.Glob(filepath.Join(exports, "task-instances-*.jsonl"))
	exported := map[string]activity.State{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			ti, err := activity.UnmarshalRecord(sc.Bytes())
			if err != nil {
				t.Fatalf("export line: %v", err)
			}
			exported[ti.ID] = ti.State
		}
		fh.Close()
	}
	for _, id := range done {
		if exported[id] != activity.StateSuccess {
			t.Errorf("%s exported as %q, want its success record", id, exported[id])
		}
	}
	if _, ok := exported[waiting.ID]; ok {
		t.Errorf("the queued task was exported")
	}
}
