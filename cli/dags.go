package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/taskwire/taskwire/dag"
)

const dagsUsage = `usage: executor dags apply -f FILE [flags]
       executor dags list [flags]
       executor dags get DAG_ID [flags]
       executor dags pause|unpause DAG_ID [flags]
       executor dags delete DAG_ID [flags]

Manages DAGs. apply reads a DAG document (YAML or JSON; "-" reads stdin),
checks it here (every problem is printed with its line, and nothing is
sent), and stores it as the DAG's new version; a document equal to the
current version changes nothing. Runs pin the version they started with.
A paused DAG's schedule creates no runs and triggering it is refused.
delete removes the DAG, its versions and its runs' records.
`

func (c *cli) dags(ctx context.Context, args []string) error {
	sub, args, fs, a, err := c.apiSubcommand("dags", dagsUsage, args)
	if err != nil {
		return err
	}
	switch sub {
	case "apply":
		file := fs.String("f", "", "the DAG file (YAML or JSON; - for stdin)")
		api, _, err := c.apiCommand(fs, a, args)
		if err != nil {
			return err
		}
		if *file == "" {
			return usagef("dags apply: -f FILE is required")
		}
		doc, err := c.readFile(*file)
		if err != nil {
			return usageErr(err)
		}
		d, err := dag.Parse(doc)
		var ve *dag.ValidationError
		if errors.As(err, &ve) {
			for _, p := range ve.Problems {
				loc := *file
				if p.Line > 0 {
					loc += ":" + strconv.Itoa(p.Line)
				}
				if p.Field != "" {
					fmt.Fprintf(c.stderr, "%s: %s: %s\n", loc, p.Field, p.Message)
				} else {
					fmt.Fprintf(c.stderr, "%s: %s\n", loc, p.Message)
				}
			}
			return usagef("dags apply: %s is not a valid DAG (%d problem(s)); nothing was stored", *file, len(ve.Problems))
		}
		if err != nil {
			return usageErr(err)
		}
		before, _ := api.Dag(ctx, d.DagID)
		rec, err := api.PutDag(ctx, d)
		if err != nil {
			return err
		}
		if a.json {
			return printJSON(c.stdout, rec)
		}
		if before != nil && before.Version == rec.Version {
			fmt.Fprintf(c.stdout, "dag %s unchanged (version %d)\n", rec.DagID, rec.Version)
			return nil
		}
		fmt.Fprintf(c.stdout, "dag %s stored: version %d, %d task(s)%s\n", rec.DagID, rec.Version, len(rec.DAG.Tasks), pausedNote(rec.Paused))
		return nil
	case "list":
		api, _, err := c.apiCommand(fs, a, args)
		if err != nil {
			return err
		}
		ds, err := api.Dags(ctx)
		if err != nil {
			return err
		}
		if a.json {
			if ds == nil {
				ds = []dag.Summary{}
			}
			return printJSON(c.stdout, map[string]any{"dags": ds})
		}
		tw := newTable(c.stdout)
		row(tw, "DAG ID", "PAUSED", "SCHEDULE", "VERSION", "TASKS", "NEXT RUN", "LAST RUNS")
		for _, d := range ds {
			var last []string
			for _, r := range d.LastRuns {
				last = append(last, string(r.State))
			}
			next := ""
			if d.NextRunAt != nil {
				next = d.NextRunAt.Format(time.RFC3339)
			}
			sched := d.Schedule
			if sched != "" && d.Timezone != "" {
				sched += " (" + d.Timezone + ")"
			}
			row(tw, d.DagID, strconv.FormatBool(d.Paused), sched, strconv.Itoa(d.Version), strconv.Itoa(d.Tasks), next, strings.Join(last, ","))
		}
		return tw.Flush()
	case "get":
		api, pos, err := c.apiCommand(fs, a, args, "DAG_ID")
		if err != nil {
			return err
		}
		rec, err := api.Dag(ctx, pos[0])
		if err != nil {
			return err
		}
		if a.json {
			return printJSON(c.stdout, rec)
		}
		fmt.Fprintf(c.stdout, "# dag %s version %d%s, updated %s\n", rec.DagID, rec.Version, pausedNote(rec.Paused), rec.UpdatedAt.Format(time.RFC3339))
		if rec.NextRunAt != nil {
			fmt.Fprintf(c.stdout, "# next scheduled run %s\n", rec.NextRunAt.Format(time.RFC3339))
		}
		enc := yaml.NewEncoder(c.stdout)
		enc.SetIndent(2)
		if err := enc.Encode(rec.DAG); err != nil {
			return err
		}
		return enc.Close()
	case "pause", "unpause":
		api, pos, err := c.apiCommand(fs, a, args, "DAG_ID")
		if err != nil {
			return err
		}
		rec, err := api.PauseDag(ctx, pos[0], sub == "pause")
		if err != nil {
			return err
		}
		if a.json {
			return printJSON(c.stdout, rec)
		}
		fmt.Fprintf(c.stdout, "dag %s %sd\n", rec.DagID, sub)
		return nil
	case "delete":
		api, pos, err := c.apiCommand(fs, a, args, "DAG_ID")
		if err != nil {
			return err
		}
		if err := api.DeleteDag(ctx, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "dag %s deleted\n", pos[0])
		return nil
	case "-h", "-help", "--help", "help":
		fmt.Fprint(c.stdout, dagsUsage)
		return nil
	}
	return usagef("dags: unknown subcommand %q (want apply, list, get, pause, unpause or delete)", sub)
}

func pausedNote(paused bool) string {
	if paused {
		return " (paused)"
	}
	return ""
}

// readFile reads a file, or stdin for "-".
func (c *cli) readFile(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(c.stdin)
	}
	return os.ReadFile(name)
}

// apiSubcommand splits "SUB ARGS…" of a command with subcommands that
// call the public API (dags, runs): the subcommand, its arguments, and a
// flag set with the API flags registered in a. No subcommand prints the
// usage and is exit status 2.
func (c *cli) apiSubcommand(name, usage string, args []string) (string, []string, *flag.FlagSet, *apiFlags, error) {
	if len(args) == 0 {
		fmt.Fprint(c.stderr, usage)
		return "", nil, nil, nil, &exitError{code: 2}
	}
	fs := c.newFlagSet(name+" "+args[0], usage)
	a := &apiFlags{}
	a.register(fs)
	return args[0], args[1:], fs, a, nil
}
