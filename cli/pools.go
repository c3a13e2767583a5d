package cli

import (
	"context"
	"fmt"
	"strconv"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/client"
)

const poolsUsage = `usage: executor pools [list] [flags]
       executor pools set NAME --slots N [--include-deferred] [--description TEXT]
       executor pools delete NAME

Pools bound how many tasks that name them (a task's "pool", taking
"pool_slots" slots, default 1) are handed to workers at once, across every
worker, queue and executor replica. A task whose pool has no open slot waits
(queued, reason "waiting for pool NAME"); among waiting tasks the highest
priority_weight goes first, ties first come first served. A deferred task
gives its slots back unless the pool was set with --include-deferred.

Tasks that name no pool are in default_pool, which has no limit until it is
set. --slots -1 removes a pool's limit. A resize takes effect at once (tasks
holding slots keep them). Deleting a pool makes its tasks wait until it is
set again.

list shows, per pool: SLOTS, OPEN (slots left), RUNNING, QUEUED (admitted,
not running yet), DEFERRED and WAITING (waiting for admission).
`

func (c *cli) pools(ctx context.Context, args []string) error {
	fs := c.newFlagSet("pools", poolsUsage)
	var a apiFlags
	a.register(fs)
	slots := fs.Int("slots", 0, "slots of the pool (set); -1: no limit")
	includeDeferred := fs.Bool("include-deferred", false, "deferred tasks keep their slots (set)")
	description := fs.String("description", "", "what the pool guards (set)")
	pos, given, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	verb, name, err := settingsVerb(fs, pos, "NAME", activity.ValidatePool)
	if err != nil {
		return err
	}
	if verb == "set" && !given["slots"] {
		return usagef("pools set: --slots N is required (-1 for no limit)")
	}
	api, err := a.client()
	if err != nil {
		return err
	}
	switch verb {
	case "set":
		p, err := api.SetPool(ctx, name, client.PoolSettings{Slots: *slots, IncludeDeferred: *includeDeferred, Description: *description})
		if err != nil {
			return err
		}
		if a.json {
			return printJSON(c.stdout, p)
		}
		fmt.Fprintf(c.stdout, "pool %s: %s slots\n", p.Name, slotsText(p.Slots))
		return nil
	case "delete":
		if err := api.DeletePool(ctx, name); err != nil {
			return err
		}
		if !a.json {
			fmt.Fprintf(c.stdout, "pool %s deleted\n", name)
		}
		return nil
	}
	ps, err := api.Pools(ctx)
	if err != nil {
		return err
	}
	if a.json {
		if ps == nil {
			ps = []activity.Pool{}
		}
		return printJSON(c.stdout, map[string]any{"pools": ps})
	}
	tw := newTable(c.stdout)
	row(tw, "POOL", "SLOTS", "OPEN", "RUNNING", "QUEUED", "DEFERRED", "WAITING", "DESCRIPTION")
	for _, p := range ps {
		desc := p.Description
		if p.IncludeDeferred {
			desc = "(deferred count) " + desc
		}
		row(tw, p.Name, slotsText(p.Slots), slotsText(p.Open), strconv.Itoa(p.Running), strconv.Itoa(p.Queued),
			strconv.Itoa(p.Deferred), strconv.Itoa(p.Waiting), desc)
	}
	return tw.Flush()
}

func slotsText(n int) string {
	if n < 0 {
		return "unlimited"
	}
	return strconv.Itoa(n)
}
