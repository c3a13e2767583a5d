package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/taskwire/taskwire/activity"
)

const workersUsage = `usage: executor workers [flags]
       executor workers drain ID [flags]

Lists the workers in the registry: live, draining (put in maintenance),
api-unreachable (it reaches NATS but not the Execution API: it pulls nothing
until it does, and kills its tries before the zombie threshold) and lost (no
heartbeat for the executor's --lost-after; listed until their entry
expires). "drain ID" makes a worker stop pulling and finish its running
tasks (it reads the request on its next registry heartbeat); it says so in
its log and shows as draining.
`

func (c *cli) workers(ctx context.Context, args []string) error {
	fs := c.newFlagSet("workers", workersUsage)
	var a apiFlags
	a.register(fs)
	pos, _, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 && pos[0] == "drain" {
		if err := wantArgs(fs, pos[1:], "ID"); err != nil {
			return err
		}
		api, err := a.client()
		if err != nil {
			return err
		}
		wi, err := api.DrainWorker(ctx, pos[1])
		if err != nil {
			return err
		}
		if a.json {
			return printJSON(c.stdout, wi)
		}
		if wi.State == activity.MemberLost {
			fmt.Fprintf(c.stdout, "%s lost: no heartbeat for %s; nothing to drain\n", wi.ID, since(time.Now(), wi.LastHeartbeat))
			return nil
		}
		fmt.Fprintf(c.stdout, "%s %s: stops pulling and finishes its %d running task(s)\n", wi.ID, wi.State, wi.Running)
		return nil
	}
	if len(pos) > 0 {
		return usagef("workers: unknown argument %q (want no argument, or drain ID)", pos[0])
	}
	api, err := a.client()
	if err != nil {
		return err
	}
	ws, err := api.Workers(ctx)
	if err != nil {
		return err
	}
	if a.json {
		if ws == nil {
			ws = []activity.WorkerInfo{}
		}
		return printJSON(c.stdout, map[string]any{"workers": ws})
	}
	now := time.Now()
	tw := newTable(c.stdout)
	row(tw, "ID", "STATE", "HOSTNAME", "QUEUES", "SLOTS", "RUNNING", "RUNTIMES", "VERSION", "UP", "LAST HEARTBEAT")
	for _, w := range ws {
		row(tw, w.ID, w.State, w.Hostname, strings.Join(w.Queues, ","),
			fmt.Sprintf("%d/%d free", w.FreeSlots, w.Concurrency), strconv.Itoa(w.Running),
			strings.Join(w.Runtimes, ","), w.Version, since(now, w.StartedAt), since(now, w.LastHeartbeat)+" ago")
	}
	return tw.Flush()
}

const triggerersUsage = `usage: executor triggerers [flags]

Lists the triggerers: live or lost (no heartbeat for the executor's
--lost-after), and the triggers each holds.
`

func (c *cli) triggerers(ctx context.Context, args []string) error {
	fs := c.newFlagSet("triggerers", triggerersUsage)
	var a apiFlags
	a.register(fs)
	api, _, err := c.apiCommand(fs, &a, args)
	if err != nil {
		return err
	}
	ts, err := api.Triggerers(ctx)
	if err != nil {
		return err
	}
	if a.json {
		if ts == nil {
			ts = []activity.TriggererInfo{}
		}
		return printJSON(c.stdout, map[string]any{"triggerers": ts})
	}
	now := time.Now()
	tw := newTable(c.stdout)
	row(tw, "ID", "STATE", "HOSTNAME", "HELD", "UP", "LAST HEARTBEAT")
	for _, t := range ts {
		row(tw, t.ID, t.State, t.Hostname, strconv.Itoa(t.Held), since(now, t.StartedAt), since(now, t.LastHeartbeat)+" ago")
	}
	return tw.Flush()
}

const queuesUsage = `usage: executor queues [flags]
       executor queues set NAME --max-running N

set bounds how many task instances of the queue are admitted at once
(queued to a worker or running) across all workers; 0 removes the bound.
Task instances beyond it wait (queued, reason "waiting for queue NAME's
max_running"), highest priority_weight first.

Shows each queue: activities pending in JetStream (not yet pulled), task
instances waiting for admission (their pool has no open slot; see executor
pools), running and deferred, live workers serving it, and the task
instances that finished (and failed) in the last minute.
`

func (c *cli) queues(ctx context.Context, args []string) error {
	fs := c.newFlagSet("queues", queuesUsage)
	var a apiFlags
	a.register(fs)
	maxRunning := fs.Int("max-running", 0, "max running task instances of the queue (set); 0 removes the bound")
	pos, given, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 && pos[0] == "set" {
		if err := wantArgs(fs, pos[1:], "NAME"); err != nil {
			return err
		}
		if !given["max-running"] {
			return usagef("queues set: --max-running N is required (0 removes the bound)")
		}
		api, err := a.client()
		if err != nil {
			return err
		}
		qi, err := api.SetQueueMaxRunning(ctx, pos[1], *maxRunning)
		if err != nil {
			return err
		}
		if a.json {
			return printJSON(c.stdout, qi)
		}
		fmt.Fprintf(c.stdout, "queue %s: max_running %s\n", qi.Name, slotsText(qi.MaxRunning-boolInt(qi.MaxRunning == 0)))
		return nil
	}
	if err := wantArgs(fs, pos); err != nil {
		return err
	}
	api, err := a.client()
	if err != nil {
		return err
	}
	qs, err := api.Queues(ctx)
	if err != nil {
		return err
	}
	if a.json {
		if qs == nil {
			qs = []activity.QueueInfo{}
		}
		return printJSON(c.stdout, map[string]any{"queues": qs})
	}
	tw := newTable(c.stdout)
	row(tw, "QUEUE", "PENDING", "WAITING", "RUNNING", "MAX RUNNING", "DEFERRED", "WORKERS", "FINISHED/MIN", "FAILED/MIN")
	for _, q := range qs {
		row(tw, q.Name, strconv.Itoa(q.Pending), strconv.Itoa(q.Waiting), strconv.Itoa(q.Running), slotsText(q.MaxRunning-boolInt(q.MaxRunning == 0)), strconv.Itoa(q.Deferred),
			strconv.Itoa(q.Workers), strconv.Itoa(q.FinishedLastMinute), strconv.Itoa(q.FailedLastMinute))
	}
	return tw.Flush()
}

// since says how long before now t was, to the second ("" for zero).
func since(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return max(now.Sub(t), 0).Round(time.Second).String()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
