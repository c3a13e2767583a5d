package cli

import (
	"context"
	"fmt"
	"strconv"

	"github.com/taskwire/taskwire/activity"
)

const limitsUsage = `usage: executor limits [list] [flags]
       executor limits set KEY --rps R [--concurrent C]
       executor limits delete KEY

Rate limits pace the requests polling triggers make (an http trigger's
kwarg rate_key, by default its URL's host, e.g. api.example.com or
127.0.0.1:8080): at most R requests a second under KEY, and with
--concurrent at most C in flight, across every triggerer of the cluster.
A trigger whose request must wait keeps waiting; taskwire_rate_limited_total
counts those requests. (Storage limits are serve's flags, not these.)
`

func (c *cli) limits(ctx context.Context, args []string) error {
	fs := c.newFlagSet("limits", limitsUsage)
	var a apiFlags
	a.register(fs)
	rps := fs.Float64("rps", 0, "requests per second under KEY (set)")
	concurrent := fs.Int("concurrent", 0, "requests in flight under KEY (set); 0: no bound")
	pos, given, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	verb, key, err := settingsVerb(fs, pos, "KEY", activity.ValidateRateKey)
	if err != nil {
		return err
	}
	if verb == "set" && (!given["rps"] || *rps <= 0) {
		return usagef("limits set: --rps R (> 0) is required")
	}
	api, err := a.client()
	if err != nil {
		return err
	}
	switch verb {
	case "set":
		l, err := api.SetRateLimit(ctx, key, *rps, *concurrent)
		if err != nil {
			return err
		}
		if a.json {
			return printJSON(c.stdout, l)
		}
		fmt.Fprintf(c.stdout, "limit %s: %s requests/s%s\n", l.Key, strconv.FormatFloat(l.RPS, 'f', -1, 64), concurrentText(l.Concurrent))
		return nil
	case "delete":
		if err := api.DeleteRateLimit(ctx, key); err != nil {
			return err
		}
		if !a.json {
			fmt.Fprintf(c.stdout, "limit %s deleted\n", key)
		}
		return nil
	}
	ls, err := api.RateLimits(ctx)
	if err != nil {
		return err
	}
	if a.json {
		if ls == nil {
			ls = []activity.RateLimit{}
		}
		return printJSON(c.stdout, map[string]any{"limits": ls})
	}
	tw := newTable(c.stdout)
	row(tw, "KEY", "RPS", "CONCURRENT")
	for _, l := range ls {
		conc := "-"
		if l.Concurrent > 0 {
			conc = strconv.Itoa(l.Concurrent)
		}
		row(tw, l.Key, strconv.FormatFloat(l.RPS, 'f', -1, 64), conc)
	}
	return tw.Flush()
}

func concurrentText(n int) string {
	if n <= 0 {
		return ""
	}
	return fmt.Sprintf(", %d in flight", n)
}
