package cli

import (
	"context"
	"fmt"

	"github.com/taskwire/taskwire/client"
)

// logsPurge is "executor logs purge --older-than D | --task ID | --all".
func (c *cli) logsPurge(ctx context.Context, args []string) error {
	fs := c.newFlagSet("logs purge", logsUsage)
	var a apiFlags
	a.register(fs)
	olderThan := fs.Duration("older-than", 0, "remove the lines stored longer ago than this, e.g. 72h")
	task := fs.String("task", "", "remove every line of this task instance")
	all := fs.Bool("all", false, "remove every line")
	api, _, err := c.apiCommand(fs, &a, args)
	if err != nil {
		return err
	}
	n := 0
	for _, set := range []bool{*olderThan > 0, *task != "", *all} {
		if set {
			n++
		}
	}
	if n != 1 || *olderThan < 0 {
		return usagef("logs purge: give exactly one of --older-than D (> 0), --task ID, --all")
	}
	purged, err := api.PurgeLogs(ctx, client.PurgeLogsOpts{OlderThan: *olderThan, TaskInstanceID: *task, All: *all})
	if err != nil {
		return err
	}
	if a.json {
		_, err = fmt.Fprintf(c.stdout, "{\"purged\":%d}\n", purged)
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "purged %d log messages\n", purged)
	return err
}
