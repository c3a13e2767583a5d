package cli

import (
	"context"
	"encoding/json"
	"fmt"
)

const xcomUsage = `usage: executor xcom get DAG_ID RUN_ID TASK_ID [KEY] [flags]

Prints an XCom value as JSON; KEY defaults to return_value.
`

func (c *cli) xcom(ctx context.Context, args []string) error {
	sub, rest, err := subcommand(c, "xcom", xcomUsage, args, "get")
	if err != nil {
		return err
	}
	fs := c.newFlagSet("xcom "+sub, xcomUsage)
	var a apiFlags
	a.register(fs)
	pos, _, err := c.parse(fs, rest)
	if err != nil {
		return err
	}
	if len(pos) < 3 || len(pos) > 4 {
		return usagef("xcom get: want DAG_ID RUN_ID TASK_ID [KEY], got %d argument(s): %q", len(pos), pos)
	}
	key := "return_value"
	if len(pos) == 4 {
		key = pos[3]
	}
	api, err := a.client()
	if err != nil {
		return err
	}
	v, err := api.XCom(ctx, pos[0], pos[1], pos[2], key)
	if err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(c.stdout, string(b))
	return err
}
