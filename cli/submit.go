package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/sync/errgroup"
	"gopkg.in/yaml.v3"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/client"
)

const submitUsage = `usage: executor submit [flags] [--] CMD [ARGS...]
       executor submit [flags] --task NAME
       executor submit [flags] --task-id T [--dag-id D --run-id R]
       executor submit [flags] -f FILE

Queues a task instance and prints its id. CMD runs with no SDK on a worker
serving --queue; --task instead names a task of the SDK runtime configured for
the queue. With neither, --task-id names the task: the airflow runtime runs
task T of DAG D from its DAG folder with Airflow's own task runner
(executor submit --queue airflow --dag-id D --task-id T --run-id R). -f reads a TaskSpec, or a list of them, from a JSON or YAML file
("-" reads stdin): flags given on the command line override the file's values,
and flag defaults (and their TASKWIRE_* variables) fill the values it leaves
empty.

With --wait it prints each state change as it happens and exits 0 when the
task instance ends in success or skipped, 1 when it ends failed, cancelled or
removed. Interrupting the wait leaves the task running.

Submitting several (-f with a list) shows a progress bar on stderr and a
summary by queue; with --wait, a bar of those finished, then each one's final
state and a summary by state.

--param K=V takes V as JSON when it is valid JSON (3, true, [1,2], "s"), else
as a string. The identity flags (--dag-id, --task-id, --run-id) deliberately
have no environment fallback: tasks run with TASKWIRE_DAG_ID etc. set, and a
task that submits another must not lend it its own identity.
`

// maxSpecFile bounds a -f file.
const maxSpecFile = 16 << 20

// pairFlag is a repeatable K=V flag.
type pairFlag struct {
	keys []string
	vals []string
}

func (p *pairFlag) String() string {
	if p == nil {
		return ""
	}
	var b strings.Builder
	for i := range p.keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(p.keys[i] + "=" + p.vals[i])
	}
	return b.String()
}

func (p *pairFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", v)
	}
	p.keys, p.vals = append(p.keys, k), append(p.vals, val)
	return nil
}

// submitOpts is a parsed submit command line.
type submitOpts struct {
	api   apiFlags
	wait  bool
	specs []activity.TaskSpec
}

// specFlags are the flags that make a TaskSpec.
type specFlags struct {
	queue, dagID, taskID, runID, task string
	retries                           int
	retryDelay, maxRetryDelay         time.Duration
	exponential                       bool
	timeout                           time.Duration
	env, params                       pairFlag
	file                              string
}

func (c *cli) parseSubmit(args []string) (*submitOpts, error) {
	fs := c.newFlagSet("submit", submitUsage)
	o := &submitOpts{}
	var f specFlags
	o.api.register(fs)
	fs.StringVar(&f.queue, "queue", "default", "queue to run on, [a-z0-9_-]{1,64} (TASKWIRE_SUBMIT_QUEUE)")
	fs.StringVar(&f.dagID, "dag-id", "", `DAG id; default "adhoc"`)
	fs.StringVar(&f.taskID, "task-id", "", "task id; default the task name or the command's base name")
	fs.StringVar(&f.runID, "run-id", "", `run id; default "manual__<time>"`)
	fs.StringVar(&f.task, "task", "", "SDK task `NAME` to run instead of a command")
	fs.IntVar(&f.retries, "retries", 0, "retries of a failed try, 0-100 (TASKWIRE_SUBMIT_RETRIES)")
	fs.DurationVar(&f.retryDelay, "retry-delay", 0, "delay before a retry; 0 means 1s (TASKWIRE_SUBMIT_RETRY_DELAY)")
	fs.BoolVar(&f.exponential, "retry-exponential", false, "double the delay for each further retry (TASKWIRE_SUBMIT_RETRY_EXPONENTIAL)")
	fs.DurationVar(&f.maxRetryDelay, "max-retry-delay", 0, "cap of the retry delay; 0 means 1h (TASKWIRE_SUBMIT_MAX_RETRY_DELAY)")
	fs.DurationVar(&f.timeout, "timeout", 0, "execution timeout of a try; 0 means none (TASKWIRE_SUBMIT_TIMEOUT)")
	fs.Var(&f.env, "env", "`K=V` environment variable of the task (repeatable)")
	fs.Var(&f.params, "param", "`K=V` param of the task, V JSON or a string (repeatable)")
	fs.StringVar(&f.file, "f", "", "JSON or YAML `FILE` of a TaskSpec or a list of them; \"-\" reads stdin")
	fs.BoolVar(&o.wait, "wait", false, "print state changes until the task instance is finished; exit 1 unless it succeeded")
	command, given, err := c.parseHead(fs, args)
	if err != nil {
		return nil, err
	}
	params := parseParams(f.params)

	var specs []activity.TaskSpec
	switch {
	case f.file != "" && len(command) > 0:
		return nil, usagef("submit: give a command or -f FILE, not both")
	case f.file != "":
		if specs, err = c.readSpecs(f.file); err != nil {
			return nil, usageErr(err)
		}
	default:
		if len(command) == 0 && f.task == "" {
			if f.taskID == "" {
				return nil, usagef("submit: want a command after -- , --task NAME, --task-id T, or -f FILE")
			}
			f.task, command = f.taskID, nil
		}
		if len(command) > 0 && f.task != "" {
			return nil, usagef("submit: give a command or --task NAME, not both")
		}
		specs = []activity.TaskSpec{{Entrypoint: activity.Entrypoint{Command: command}}}
	}
	for i := range specs {
		f.apply(&specs[i], given, params)
	}
	now := time.Now()
	for i, s := range specs {
		s = s.WithDefaults(now)
		err := s.Validate()
		if s.Task == "" && len(s.Command) == 0 {
			err = errors.New("needs a command or a task")
		}
		if err != nil {
			if len(specs) > 1 {
				return nil, usagef("submit: spec %d: %v", i+1, err)
			}
			return nil, usagef("submit: %v", err)
		}
	}
	o.specs = specs
	return o, nil
}

// apply sets the fields of s from the flags: a flag given on the command
// line always, a default (or environment) value only where s is empty.
func (f *specFlags) apply(s *activity.TaskSpec, given map[string]bool, params map[string]any) {
	str := func(name string, dst *string, v string) {
		if given[name] || *dst == "" {
			*dst = v
		}
	}
	str("queue", &s.Queue, f.queue)
	str("dag-id", &s.DagID, f.dagID)
	str("task-id", &s.TaskID, f.taskID)
	str("run-id", &s.RunID, f.runID)
	if given["task"] {
		s.Task, s.Command = f.task, nil
	} else if s.Task == "" && len(s.Command) == 0 {
		s.Task = f.task
	}
	if given["retries"] || s.Retries == 0 {
		s.Retries = f.retries
	}
	dur := func(name string, dst *activity.Duration, v time.Duration) {
		if given[name] || *dst == 0 {
			*dst = activity.Duration(v)
		}
	}
	dur("retry-delay", &s.Delay, f.retryDelay)
	dur("max-retry-delay", &s.MaxDelay, f.maxRetryDelay)
	dur("timeout", &s.ExecutionTimeout, f.timeout)
	if given["retry-exponential"] || !s.Exponential {
		s.Exponential = f.exponential
	}
	for i, k := range f.env.keys {
		if s.Env == nil {
			s.Env = map[string]string{}
		}
		s.Env[k] = f.env.vals[i]
	}
	for k, v := range params {
		if s.Params == nil {
			s.Params = map[string]any{}
		}
		s.Params[k] = v
	}
}

// parseParams decodes --param values: JSON when valid (numbers kept exact
// as json.Number), else the string.
func parseParams(p pairFlag) map[string]any {
	out := map[string]any{}
	for i, k := range p.keys {
		var v any
		dec := json.NewDecoder(strings.NewReader(p.vals[i]))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil || dec.More() {
			v = p.vals[i]
		}
		out[k] = v
	}
	return out
}

// readSpecs reads the -f file.
func (c *cli) readSpecs(name string) ([]activity.TaskSpec, error) {
	data, err := c.readInput("-f", name, maxSpecFile)
	if err != nil {
		return nil, err
	}
	specs, err := decodeSpecs(data, filepath.Ext(name))
	if err != nil {
		return nil, fmt.Errorf("-f %s: %w", name, err)
	}
	return specs, nil
}

// decodeSpecs decodes a TaskSpec or a list of them: JSON for ext ".json",
// YAML (every document of the stream) for ".yaml" and ".yml", and for any
// other extension JSON when the data starts with '{' or '[', else YAML.
// Unknown fields are refused so a typo is not silently dropped.
func decodeSpecs(data []byte, ext string) ([]activity.TaskSpec, error) {
	trimmed := bytes.TrimSpace(data)
	isJSON := ext == ".json"
	if ext != ".json" && ext != ".yaml" && ext != ".yml" {
		isJSON = len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[')
	}
	var specs []activity.TaskSpec
	if isJSON {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.DisallowUnknownFields()
		var err error
		if len(trimmed) > 0 && trimmed[0] == '[' {
			err = dec.Decode(&specs)
		} else {
			var s activity.TaskSpec
			err = dec.Decode(&s)
			specs = append(specs, s)
		}
		if err != nil {
			return nil, fmt.Errorf("decode JSON: %w", err)
		}
		if dec.More() {
			return nil, errors.New("decode JSON: trailing data after the value")
		}
	} else {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for doc := 1; ; doc++ {
			var n yaml.Node
			err := dec.Decode(&n)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("decode YAML: %w", err)
			}
			got, err := decodeYAMLSpecs(&n)
			if err != nil {
				return nil, fmt.Errorf("decode YAML document %d: %w", doc, err)
			}
			specs = append(specs, got...)
		}
	}
	if len(specs) == 0 {
		return nil, errors.New("no task specs")
	}
	return specs, nil
}

// decodeYAMLSpecs decodes one YAML document strictly (yaml.Node.Decode
// cannot refuse unknown fields, so the node is encoded and decoded again).
func decodeYAMLSpecs(n *yaml.Node) ([]activity.TaskSpec, error) {
	root := n
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	b, err := yaml.Marshal(root)
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if root.Kind == yaml.SequenceNode {
		var specs []activity.TaskSpec
		err = dec.Decode(&specs)
		return specs, err
	}
	var s activity.TaskSpec
	if err := dec.Decode(&s); err != nil {
		return nil, err
	}
	return []activity.TaskSpec{s}, nil
}

func (c *cli) submit(ctx context.Context, args []string) error {
	o, err := c.parseSubmit(args)
	if err != nil {
		return err
	}
	api, err := o.api.client()
	if err != nil {
		return err
	}
	many := len(o.specs) > 1
	var bar *progressbar.ProgressBar
	if many {
		bar = c.newBar(len(o.specs), "submitting")
	}
	tis := make([]*activity.TaskInstance, 0, len(o.specs))
	for i, spec := range o.specs {
		ti, err := api.Submit(ctx, spec)
		if err != nil {
			if bar != nil {
				_ = bar.Exit()
				fmt.Fprintln(c.stderr)
			}
			if i > 0 {
				return fmt.Errorf("%w (the %d task instance(s) before were queued)", err, i)
			}
			return err
		}
		tis = append(tis, ti)
		if !o.api.json {
			fmt.Fprintln(c.stdout, ti.ID)
		}
		if bar != nil {
			_ = bar.Add(1)
		}
	}
	if many {
		fmt.Fprintf(c.stderr, "submitted %d task instances: %s\n", len(tis), countBy(tis, func(ti *activity.TaskInstance) string { return "queue " + ti.Queue }))
	}
	if o.wait {
		wait := c.waitAll
		if many {
			wait = c.waitMany
		}
		// Meanwhile, say so if no live worker serves a queue waited on.
		stderr, locked := c.stderr, &lockedWriter{w: c.stderr}
		c.stderr = locked
		wctx, stop := context.WithCancel(ctx)
		warned, submitted := make(chan struct{}), tis
		go func() {
			defer close(warned)
			c.warnUnserved(wctx, api, submitted, locked)
		}()
		tis, err = wait(ctx, api, tis, o.api.json)
		stop()
		<-warned
		c.stderr = stderr
		if err != nil {
			return err
		}
	}
	if o.api.json {
		if len(tis) == 1 {
			err = printJSON(c.stdout, tis[0])
		} else {
			err = printJSON(c.stdout, tis)
		}
		if err != nil {
			return err
		}
	}
	for _, ti := range tis {
		if o.wait && !succeeded(ti.State) {
			return &exitError{code: 1}
		}
	}
	return nil
}

// succeeded reports whether a finished task instance counts as a success.
func succeeded(s activity.State) bool {
	return s == activity.StateSuccess || s == activity.StateSkipped
}

// newBar returns a progress bar of n steps on stderr.
func (c *cli) newBar(n int, what string) *progressbar.ProgressBar {
	return progressbar.NewOptions(n,
		progressbar.OptionSetWriter(c.stderr),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(c.stderr) }),
	)
}

// countBy says how many task instances fall under each key, e.g.
// "3 queue default, 2 queue go", in key order.
func countBy(tis []*activity.TaskInstance, key func(*activity.TaskInstance) string) string {
	n := map[string]int{}
	for _, ti := range tis {
		n[key(ti)]++
	}
	parts := make([]string, 0, len(n))
	for _, k := range sortedKeys(n) {
		parts = append(parts, fmt.Sprintf("%d %s", n[k], k))
	}
	return strings.Join(parts, ", ")
}

// waitMany waits for many task instances: a progress bar of those finished
// on stderr instead of every state change, then each one's final state (on
// stdout, unless JSON goes there) and a summary by state.
func (c *cli) waitMany(ctx context.Context, api *client.Client, tis []*activity.TaskInstance, jsonOut bool) ([]*activity.TaskInstance, error) {
	bar := c.newBar(len(tis), "finished")
	final := make([]*activity.TaskInstance, len(tis))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for i, ti := range tis {
		g.Go(func() error {
			f, err := api.Wait(gctx, ti.ID, nil)
			if err == nil {
				final[i] = f
				_ = bar.Add(1)
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		_ = bar.Exit()
		fmt.Fprintln(c.stderr)
		if ctx.Err() != nil {
			fmt.Fprintln(c.stderr, "executor: stopped waiting; the task instance(s) keep running (executor cancel ID stops one)")
			return nil, &exitError{code: 130}
		}
		return nil, err
	}
	out := c.stdout
	if jsonOut {
		out = c.stderr
	}
	for _, ti := range final {
		fmt.Fprintf(out, "%s %s\n", ti.ID, describe(ti))
	}
	fmt.Fprintf(out, "%d finished: %s\n", len(final), countBy(final, func(ti *activity.TaskInstance) string { return string(ti.State) }))
	return final, nil
}

// waitAll waits for every task instance to finish, printing their state
// changes (to stderr when stdout carries JSON), and returns them finished.
// With several, each line starts with the task instance's id.
func (c *cli) waitAll(ctx context.Context, api *client.Client, tis []*activity.TaskInstance, jsonOut bool) ([]*activity.TaskInstance, error) {
	out := c.stdout
	if jsonOut {
		out = c.stderr
	}
	type seen struct {
		state activity.State
		try   int
	}
	var (
		mu   sync.Mutex
		last = make([]seen, len(tis))
	)
	// say prints a change, starting with the state Submit answered; Wait's
	// first answer repeats it when the task has not moved yet.
	say := func(i int, ti *activity.TaskInstance) {
		mu.Lock()
		defer mu.Unlock()
		if (last[i] == seen{ti.State, ti.TryNumber}) {
			return
		}
		last[i] = seen{ti.State, ti.TryNumber}
		if len(tis) > 1 {
			fmt.Fprintf(out, "%s %s\n", ti.ID, describe(ti))
		} else {
			fmt.Fprintln(out, describe(ti))
		}
	}
	for i, ti := range tis {
		say(i, ti)
	}
	final := make([]*activity.TaskInstance, len(tis))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for i, ti := range tis {
		g.Go(func() error {
			f, err := api.Wait(gctx, ti.ID, func(ti *activity.TaskInstance) { say(i, ti) })
			final[i] = f
			return err
		})
	}
	if err := g.Wait(); err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(c.stderr, "executor: stopped waiting; the task instance(s) keep running (executor cancel ID stops one)")
			return nil, &exitError{code: 130}
		}
		return nil, err
	}
	return final, nil
}

// describe says a task instance's state for a person: "queued",
// "running (try 1 on host-a)", "deferred (try 1: waiting on timedelta)",
// "queued (try 1, resuming execute_complete)", "failed (try 2: exit status 3)".
func describe(ti *activity.TaskInstance) string {
	var detail string
	switch ti.State {
	case activity.StateQueued:
		switch {
		case ti.NextMethod == activity.FailMethod:
			detail = fmt.Sprintf("try %d: trigger failed", ti.TryNumber)
			if msg, _ := ti.NextKwargs["error"].(string); msg != "" {
				detail += ": " + msg
			}
		case ti.NextMethod != "":
			detail = fmt.Sprintf("try %d, resuming %s", ti.TryNumber, ti.NextMethod)
		case ti.TryNumber > 1:
			detail = fmt.Sprintf("try %d", ti.TryNumber)
		}
	case activity.StateRunning:
		detail = fmt.Sprintf("try %d", ti.TryNumber)
		if ti.Hostname != "" {
			detail += " on " + ti.Hostname
		}
	case activity.StateDeferred:
		detail = fmt.Sprintf("try %d", ti.TryNumber)
		if ti.Trigger != nil {
			detail += ": waiting on " + triggerKind(ti.Trigger)
		}
	default:
		detail = fmt.Sprintf("try %d", ti.TryNumber)
		if ti.Reason != "" {
			detail += ": " + ti.Reason
		}
		if ti.State == activity.StateUpForRetry && ti.RetryAt != nil {
			detail += "; retry at " + fmtTime(ti.RetryAt)
		}
	}
	if detail == "" {
		return string(ti.State)
	}
	return fmt.Sprintf("%s (%s)", ti.State, detail)
}
