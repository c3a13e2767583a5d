package executor

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/client"
	"github.com/taskwire/taskwire/execution"
	"github.com/taskwire/taskwire/queue"
)

// TestWatchSeesEveryState: a watch of a task instance streams each state it
// goes through, even states that last a millisecond, and ends with the
// terminal one; an unknown id is ErrNotFound.
func TestWatchSeesEveryState(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{})
	api, err := client.New(client.Config{URL: f.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ti := f.submit(activity.TaskSpec{Queue: "q", Entrypoint: activity.Entrypoint{Command: []string{"x"}}})
	var (
		states []string
		first  = make(chan struct{})
		once   sync.Once
		done   = make(chan error, 1)
	)
	go func() {
		_, err := api.Watch(t.Context(), ti.ID, func(ti *activity.TaskInstance) {
			states = append(states, string(ti.State))
			once.Do(func() { close(first) })
		})
		done <- err
	}()
	<-first
	act, m := f.take("q")
	_ = m.Ack()
	req := runReq
	req.ActivityID = act.ID
	rr, err := f.ec.Run(t.Context(), act.Token, ti.ID, req)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.ec.Task(ti.ID, rr.Token).State(t.Context(), execution.StateRequest{State: activity.StateSuccess}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(states, ","); got != "queued,running,success" {
		t.Errorf("states %s, want queued,running,success", got)
	}
	if _, err := api.Watch(t.Context(), "nope", nil); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("watch of an unknown id: %v, want ErrNotFound", err)
	}
}
