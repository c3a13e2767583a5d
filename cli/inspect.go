package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/client"
)

const getUsage = `usage: executor get ID [flags]

Shows a task instance: its state, reason, entrypoint, trigger (when deferred)
and a table of its tries.
`

func (c *cli) get(ctx context.Context, args []string) error {
	fs := c.newFlagSet("get", getUsage)
	var a apiFlags
	a.register(fs)
	api, pos, err := c.apiCommand(fs, &a, args, "ID")
	if err != nil {
		return err
	}
	ti, err := api.Get(ctx, pos[0])
	if err != nil {
		return err
	}
	if a.json {
		return printJSON(c.stdout, ti)
	}
	c.printTaskInstance(ti)
	return nil
}

// printTaskInstance writes ti as "FIELD  value" lines and its tries table.
func (c *cli) printTaskInstance(ti *activity.TaskInstance) {
	tw := newTable(c.stdout)
	field := func(k, v string) {
		if v != "" {
			row(tw, k, v)
		}
	}
	field("ID", ti.ID)
	field("DAG ID", ti.DagID)
	field("TASK ID", ti.TaskID)
	field("RUN ID", ti.RunID)
	if ti.MapIndex >= 0 {
		field("MAP INDEX", strconv.Itoa(ti.MapIndex))
	}
	field("QUEUE", ti.Queue)
	field("STATE", string(ti.State))
	field("TRY", fmt.Sprintf("%d of %d", ti.TryNumber, ti.MaxTries))
	field("REASON", ti.Reason)
	field("ENTRYPOINT", entrypoint(ti.Entrypoint))
	if ti.ExecutionTimeout > 0 {
		field("TIMEOUT", ti.ExecutionTimeout.D().String())
	}
	if ti.Retry.Retries > 0 {
		r := fmt.Sprintf("%d, delay %s", ti.Retry.Retries, ti.Retry.DelayFor(2))
		if ti.Retry.Exponential {
			r += ", exponential"
		}
		field("RETRIES", r)
	}
	if ti.Hostname != "" {
		h := ti.Hostname
		if ti.PID > 0 {
			h += fmt.Sprintf(" (pid %d)", ti.PID)
		}
		field("HOST", h)
	}
	field("WORKER", ti.WorkerID)
	if t := ti.Trigger; t != nil {
		field("TRIGGER", triggerText(t))
		field("TRIGGER ID", t.ID)
		if !t.DeferredAt.IsZero() {
			field("DEFERRED AT", fmtTime(&t.DeferredAt))
		}
		field("NEXT METHOD", ti.NextMethod)
	}
	if ti.RetryAt != nil && ti.State == activity.StateUpForRetry {
		field("RETRY AT", fmtTime(ti.RetryAt))
	}
	field("QUEUED AT", fmtTime(ti.QueuedAt))
	field("STARTED", fmtTime(ti.StartDate))
	field("ENDED", fmtTime(ti.EndDate))
	if ti.RunTime > 0 {
		field("RUN TIME", ti.RunTime.D().Round(time.Millisecond).String())
	}
	field("UPDATED", fmtTime(&ti.UpdatedAt))
	_ = tw.Flush()
	if len(ti.Tries) == 0 {
		return
	}
	fmt.Fprintln(c.stdout)
	tw = newTable(c.stdout)
	row(tw, "TRY", "STATE", "HOST", "STARTED", "ENDED", "DURATION", "REASON")
	for _, t := range ti.Tries {
		dur := ""
		if t.StartDate != nil && t.EndDate != nil {
			dur = t.EndDate.Sub(*t.StartDate).Round(time.Millisecond).String()
		}
		row(tw, strconv.Itoa(t.TryNumber), string(t.State), t.Hostname, fmtTime(t.StartDate), fmtTime(t.EndDate), dur, t.Reason)
	}
	_ = tw.Flush()
}

const listUsage = `usage: executor list [flags]

Lists task instances, newest first.
`

func (c *cli) list(ctx context.Context, args []string) error {
	fs := c.newFlagSet("list", listUsage)
	var a apiFlags
	a.register(fs)
	states := fs.String("state", "", "comma-separated states to keep, e.g. queued,running")
	queue := fs.String("queue", "", "queue to keep")
	dagID := fs.String("dag-id", "", "DAG id to keep")
	limit := fs.Int("limit", 100, "most task instances to show (TASKWIRE_LIST_LIMIT)")
	cursor := fs.String("cursor", "", "continue a list: the cursor the page before printed (TASKWIRE_LIST_CURSOR)")
	pos, _, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos); err != nil {
		return err
	}
	opts := client.ListOpts{Queue: *queue, DagID: *dagID, Limit: *limit, Cursor: *cursor}
	if *limit < 1 {
		return usagef("list: --limit %d: want at least 1", *limit)
	}
	if *states != "" {
		for _, s := range strings.Split(*states, ",") {
			st, err := activity.ParseState(strings.TrimSpace(s))
			if err != nil {
				return usagef("list: --state: %v (want some of %s)", err, stateNames())
			}
			opts.States = append(opts.States, st)
		}
	}
	api, err := a.client()
	if err != nil {
		return err
	}
	page, err := api.ListPage(ctx, opts)
	if err != nil {
		return err
	}
	tis, total := page.TaskInstances, page.Total
	if a.json {
		if tis == nil {
			tis = []*activity.TaskInstance{}
		}
		out := map[string]any{"task_instances": tis, "total": total}
		if page.Next != "" {
			out["next_cursor"] = page.Next
		}
		return printJSON(c.stdout, out)
	}
	tw := newTable(c.stdout)
	row(tw, "ID", "DAG ID", "TASK ID", "RUN ID", "QUEUE", "STATE", "TRY", "UPDATED", "TRIGGER", "DEFERRED AT")
	for _, ti := range tis {
		var trig, deferredAt string
		if ti.State == activity.StateDeferred && ti.Trigger != nil {
			trig, deferredAt = triggerKind(ti.Trigger), fmtTime(&ti.Trigger.DeferredAt)
		}
		row(tw, ti.ID, ti.DagID, ti.TaskID, ti.RunID, ti.Queue, string(ti.State),
			fmt.Sprintf("%d/%d", ti.TryNumber, ti.MaxTries), fmtTime(&ti.UpdatedAt), trig, deferredAt)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	switch {
	case page.Next != "":
		fmt.Fprintf(c.stderr, "(%d of %d shown; the next page: --cursor %s)\n", len(tis), total, page.Next)
	case total > len(tis) && *cursor == "":
		fmt.Fprintf(c.stderr, "(%d of %d shown; --limit shows more)\n", len(tis), total)
	}
	return nil
}

func stateNames() string {
	names := make([]string, len(activity.States))
	for i, s := range activity.States {
		names[i] = string(s)
	}
	return strings.Join(names, ",")
}

const logsUsage = `usage: executor logs ID [flags]
       executor logs purge --older-than D | --task ID | --all

Prints a task instance's log lines as "timestamp level logger event key=value...",
those of every try unless --try; --tail N prints only the last N lines;
--follow streams new lines until the task instance is finished. --json prints
the lines as the API sends them (NDJSON). A log of any size streams: the read
fails only when no data comes for 30s.

logs purge removes stored log lines: those older than D (e.g. 72h), those of
one task instance, or all.
`

func (c *cli) logs(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "purge" {
		return c.logsPurge(ctx, args[1:])
	}
	fs := c.newFlagSet("logs", logsUsage)
	var a apiFlags
	a.register(fs)
	try := fs.Int("try", 0, "try number; 0 means every try")
	follow := fs.Bool("follow", false, "keep streaming until the task instance is finished")
	tail := fs.Int("tail", 0, "print only the last N lines; 0 means all")
	pos, _, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, "ID"); err != nil {
		return err
	}
	if *try < 0 {
		return usagef("logs: --try %d: want 0 or more", *try)
	}
	if *tail < 0 || (*tail > 0 && *follow) {
		return usagef("logs: --tail %d: want 0 or more, and not with --follow", *tail)
	}
	api, err := a.client()
	if err != nil {
		return err
	}
	prevTry := 0
	return api.LogsWith(ctx, pos[0], client.LogsOpts{Try: *try, Follow: *follow, Tail: *tail}, func(l client.LogLine) error {
		if a.json {
			_, err := fmt.Fprintf(c.stdout, "%s\n", l.Raw)
			return err
		}
		if *try == 0 && l.Try != prevTry && l.Try > 0 {
			fmt.Fprintf(c.stdout, "=== try %d\n", l.Try)
			prevTry = l.Try
		}
		_, err := fmt.Fprintln(c.stdout, formatLogLine(l))
		return err
	})
}

// logCoreFields are printed in fixed columns; any other field of a line
// follows as key=value.
var logCoreFields = map[string]bool{"try": true, "timestamp": true, "level": true, "event": true, "logger": true}

var bareValueRE = regexp.MustCompile(`^[A-Za-z0-9_.:/@+-]+$`)

// formatLogLine renders l as "timestamp level logger event key=value...".
func formatLogLine(l client.LogLine) string {
	ts := "-"
	if !l.Timestamp.IsZero() {
		ts = l.Timestamp.UTC().Format("2006-01-02T15:04:05.000Z")
	}
	orDash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-5s %s %s", ts, orDash(l.Level), orDash(l.Logger), l.Event)
	var extra map[string]json.RawMessage
	if json.Unmarshal(l.Raw, &extra) == nil {
		for _, k := range sortedKeys(extra) {
			if logCoreFields[k] {
				continue
			}
			v := string(extra[k])
			var s string
			if json.Unmarshal(extra[k], &s) == nil {
				v = s
				if !bareValueRE.MatchString(s) {
					v = strconv.Quote(s)
				}
			}
			fmt.Fprintf(&b, " %s=%s", k, v)
		}
	}
	return strings.TrimRight(b.String(), " ")
}

const cancelUsage = `usage: executor cancel ID [flags]

Cancels a task instance: a running try is killed. Cancelling a finished task
instance is an error (exit 2).
`

func (c *cli) cancel(ctx context.Context, args []string) error {
	fs := c.newFlagSet("cancel", cancelUsage)
	var a apiFlags
	a.register(fs)
	api, pos, err := c.apiCommand(fs, &a, args, "ID")
	if err != nil {
		return err
	}
	ti, err := api.Cancel(ctx, pos[0])
	if err != nil {
		return err
	}
	if a.json {
		return printJSON(c.stdout, ti)
	}
	fmt.Fprintf(c.stdout, "%s %s\n", ti.ID, describe(ti))
	return nil
}

// triggerKind names what a trigger waits on: its kind, else (a trigger the
// executor has not normalized) its classpath.
func triggerKind(t *activity.Trigger) string {
	if t.Kind != "" {
		return t.Kind
	}
	return t.Classpath
}

// triggerText renders a trigger as "kind (classpath) {kwargs}, timeout D",
// leaving out the classpath when it is the kind's own name.
func triggerText(t *activity.Trigger) string {
	s := triggerKind(t)
	if t.Kind != "" && t.Classpath != "" && !strings.EqualFold(strings.TrimSpace(t.Classpath), t.Kind) {
		s += " (" + t.Classpath + ")"
	}
	if len(t.Kwargs) > 0 {
		b, _ := json.Marshal(t.Kwargs)
		s += " " + string(b)
	}
	if t.Timeout > 0 {
		s += ", timeout " + t.Timeout.D().String()
	}
	return s
}

// entrypoint renders what a task runs: a shell-quoted command or "task NAME".
func entrypoint(e activity.Entrypoint) string {
	if e.Task != "" {
		return "task " + e.Task
	}
	q := make([]string, len(e.Command))
	for i, a := range e.Command {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

var shellSafeRE = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

func shellQuote(s string) string {
	if shellSafeRE.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// fmtTime renders t in UTC to the second, or "" when nil.
func fmtTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
