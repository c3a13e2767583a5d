package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/client"
	"github.com/taskwire/taskwire/dag"
)

const runsUsage = `usage: executor runs trigger DAG_ID [--run-id ID] [--conf JSON] [--logical-date T] [--wait] [flags]
       executor runs get DAG_ID RUN_ID [flags]
       executor runs list DAG_ID [flags]
       executor runs clear DAG_ID RUN_ID [--task T,T] [--downstream] [flags]

Manages DAG runs. trigger creates a run of the DAG's current version and
prints its run_id; the same --run-id again is the same run. With --wait it
follows the run live — every task instance's state change, and a progress
bar of the task instances done on stderr — and exits 0 if the run succeeded,
1 if it failed. get shows a run's task instances (--json: {"state": …,
"task_instances": [{"task_id", "map_index", "state", …}]}). clear makes task
instances of a run (all, or --task and with --downstream everything
downstream of them) run again as new tries; the run is running again.
`

func (c *cli) runs(ctx context.Context, args []string) error {
	sub, args, fs, a, err := c.apiSubcommand("runs", runsUsage, args)
	if err != nil {
		return err
	}
	switch sub {
	case "trigger":
		runID := fs.String("run-id", "", "the run's id (default manual__<logical date>)")
		conf := fs.String("conf", "", "the run's conf, a JSON object")
		ld := fs.String("logical-date", "", "the run's logical date, RFC 3339 (default now)")
		wait := fs.Bool("wait", false, "follow the run to its end; exit 0 only if it succeeded")
		api, pos, err := c.apiCommand(fs, a, args, "DAG_ID")
		if err != nil {
			return err
		}
		req := dag.TriggerRequest{RunID: *runID}
		if *conf != "" {
			if err := json.Unmarshal([]byte(*conf), &req.Conf); err != nil {
				return usagef("runs trigger: --conf: want a JSON object: %v", err)
			}
		}
		if *ld != "" {
			t, err := time.Parse(time.RFC3339Nano, *ld)
			if err != nil {
				return usagef("runs trigger: --logical-date: %v", err)
			}
			req.LogicalDate = &t
		}
		v, err := api.TriggerRun(ctx, pos[0], req)
		if err != nil {
			return err
		}
		if !*wait {
			if a.json {
				return printJSON(c.stdout, v)
			}
			fmt.Fprintln(c.stdout, v.RunID)
			return nil
		}
		if !a.json {
			fmt.Fprintf(c.stdout, "run %s of %s: %s\n", v.RunID, v.DagID, v.State)
		}
		return c.followRun(ctx, v, a.json, func(fn func(*dag.RunView)) (*dag.RunView, error) {
			return api.WatchRun(ctx, v.DagID, v.RunID, fn)
		})
	case "get":
		api, pos, err := c.apiCommand(fs, a, args, "DAG_ID", "RUN_ID")
		if err != nil {
			return err
		}
		v, err := api.DagRun(ctx, pos[0], pos[1])
		if err != nil {
			return err
		}
		if a.json {
			return printJSON(c.stdout, v)
		}
		c.printRun(v)
		return nil
	case "list":
		api, pos, err := c.apiCommand(fs, a, args, "DAG_ID")
		if err != nil {
			return err
		}
		rs, err := api.DagRuns(ctx, pos[0], false)
		if err != nil {
			return err
		}
		if a.json {
			if rs == nil {
				rs = []dag.RunView{}
			}
			return printJSON(c.stdout, map[string]any{"dag_runs": rs})
		}
		tw := newTable(c.stdout)
		row(tw, "RUN ID", "STATE", "TYPE", "LOGICAL DATE", "VERSION", "STARTED", "ENDED")
		for _, r := range rs {
			row(tw, r.RunID, string(r.State), r.RunType, r.LogicalDate.Format(time.RFC3339), strconv.Itoa(r.DagVersion),
				timeOrDash(r.StartDate), timeOrDash(r.EndDate))
		}
		return tw.Flush()
	case "clear":
		tasks := fs.String("task", "", "comma-separated task ids to clear (default all)")
		down := fs.Bool("downstream", false, "clear every task downstream of them too")
		api, pos, err := c.apiCommand(fs, a, args, "DAG_ID", "RUN_ID")
		if err != nil {
			return err
		}
		req := dag.ClearRequest{Downstream: *down}
		if *tasks != "" {
			req.TaskIDs = strings.Split(*tasks, ",")
		}
		v, err := api.ClearRun(ctx, pos[0], pos[1], req)
		if err != nil {
			return err
		}
		if a.json {
			return printJSON(c.stdout, v)
		}
		fmt.Fprintf(c.stdout, "run %s of %s: %d task instance(s) cleared; run %s\n", v.RunID, v.DagID, v.Cleared, v.State)
		return nil
	case "-h", "-help", "--help", "help":
		fmt.Fprint(c.stdout, runsUsage)
		return nil
	}
	return usagef("runs: unknown subcommand %q (want trigger, get, list or clear)", sub)
}

// watchRetries is how often --wait watches a run again whose stream
// ended before the run did (an executor restart), a second apart.
const watchRetries = 60

// followRun prints every state change of the run's task instances until
// the run ends, with a progress bar of the instances done, from the
// executor's watch of the run (event-driven, not polled). It returns an
// exit status 1 error unless the run succeeded.
func (c *cli) followRun(ctx context.Context, v *dag.RunView, asJSON bool,
	watch func(fn func(*dag.RunView)) (*dag.RunView, error)) error {
	seen := map[string]activity.State{}
	bar := c.newBar(len(v.TaskInstances), "tasks done")
	show := func(v *dag.RunView) {
		total, done := 0, 0
		for _, ti := range v.TaskInstances {
			total++
			if ti.Done() {
				done++
			}
			k := ti.TaskID
			if ti.MapIndex >= 0 {
				k += "[" + strconv.Itoa(ti.MapIndex) + "]"
			}
			if seen[k] == ti.State {
				continue
			}
			seen[k] = ti.State
			if !asJSON && ti.State != "none" {
				line := fmt.Sprintf("%s  %-24s %s", time.Now().Format("15:04:05.000"), k, ti.State)
				if ti.Reason != "" && ti.Done() {
					line += "  (" + ti.Reason + ")"
				}
				_ = bar.Clear()
				fmt.Fprintln(c.stdout, line)
			}
		}
		bar.ChangeMax(total)
		_ = bar.Set(done)
	}
	show(v)
	for retry := 0; !v.State.Finished(); retry++ {
		last, err := watch(show)
		if last != nil {
			v = last
		}
		if err == nil || v.State.Finished() {
			break
		}
		if !errors.Is(err, client.ErrWatchEnded) || retry == watchRetries {
			return err
		}
		select { // the executor restarting: watch again
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	_ = bar.Finish()
	fmt.Fprintln(c.stderr)
	if asJSON {
		if err := printJSON(c.stdout, v); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(c.stdout, "run %s of %s: %s\n", v.RunID, v.DagID, v.State)
	}
	if v.State != dag.RunSuccess {
		return &exitError{code: 1}
	}
	return nil
}

// printRun writes a run's fields and its task instances' table.
func (c *cli) printRun(v *dag.RunView) {
	fmt.Fprintf(c.stdout, "run %s of %s: %s (%s, logical date %s, version %d)\n", v.RunID, v.DagID, v.State, v.RunType,
		v.LogicalDate.Format(time.RFC3339), v.DagVersion)
	tw := newTable(c.stdout)
	row(tw, "TASK ID", "MAP INDEX", "STATE", "TRY", "STARTED", "ENDED", "REASON")
	for _, ti := range v.TaskInstances {
		mi := ""
		if ti.MapIndex >= 0 {
			mi = strconv.Itoa(ti.MapIndex)
		}
		try := ""
		if ti.TryNumber > 0 {
			try = strconv.Itoa(ti.TryNumber)
		}
		row(tw, ti.TaskID, mi, string(ti.State), try, timeOrDash(ti.StartDate), timeOrDash(ti.EndDate), ti.Reason)
	}
	_ = tw.Flush()
}

func timeOrDash(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.Format("15:04:05")
}
