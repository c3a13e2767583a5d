package dag

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"

	"github.com/taskwire/taskwire/activity"
)

// ErrInvalid is matched (errors.Is) by every *ValidationError.
var ErrInvalid = errors.New("invalid dag")

// Problem is one thing wrong with a DAG document: the field it concerns
// (a path such as tasks[2].depends_on), its line in the document when
// known (0 otherwise), and what is wrong.
type Problem struct {
	Field   string `json:"field,omitempty"`
	Line    int    `json:"line,omitempty"`
	Message string `json:"message"`
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Field != "" {
		b.WriteString(p.Field + ": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// ValidationError lists every problem found in a DAG document.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return fmt.Sprintf("invalid dag: %d problem(s): %s", len(parts), strings.Join(parts, "; "))
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// yamlLine finds "line N:" in a yaml.v3 error message.
var yamlLine = regexp.MustCompile(`line (\d+): `)

// Parse decodes a DAG document (YAML, or JSON, which is YAML too) and
// validates it. Unknown fields are refused. Any problem gives a
// *ValidationError naming every problem found, and no DAG.
func Parse(data []byte) (*DAG, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, &ValidationError{Problems: yamlProblems(err)}
	}
	if len(root.Content) == 0 {
		return nil, &ValidationError{Problems: []Problem{{Message: "empty document"}}}
	}
	var d DAG
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&d); err != nil {
		return nil, &ValidationError{Problems: yamlProblems(err)}
	}
	if err := d.validate(newLines(root.Content[0])); err != nil {
		return nil, err
	}
	return &d, nil
}

func yamlProblems(err error) []Problem {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	out := make([]Problem, 0, len(msgs))
	for _, m := range msgs {
		p := Problem{Message: m}
		if loc := yamlLine.FindStringSubmatchIndex(m); loc != nil {
			p.Line, _ = strconv.Atoi(m[loc[2]:loc[3]])
			p.Message = m[:loc[0]] + m[loc[1]:]
		}
		out = append(out, p)
	}
	return out
}

// lines maps field paths (dag_id, tasks[1], tasks[1].depends_on) to their
// line in the document.
type lines map[string]int

func newLines(doc *yaml.Node) lines {
	l := lines{}
	var walk func(path string, n *yaml.Node)
	walk = func(path string, n *yaml.Node) {
		if path != "" {
			l[path] = n.Line
		}
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i].Value
				p := k
				if path != "" {
					p = path + "." + k
				}
				l[p] = n.Content[i].Line
				if path == "" || strings.HasPrefix(path, "tasks[") && !strings.Contains(path, ".") {
					walk(p, n.Content[i+1])
				}
			}
		case yaml.SequenceNode:
			if path == "tasks" {
				for i, c := range n.Content {
					walk(fmt.Sprintf("tasks[%d]", i), c)
				}
			}
		}
	}
	walk("", doc)
	return l
}

// line returns the line of field, else of its nearest enclosing path.
func (l lines) line(field string) int {
	for field != "" {
		if n, ok := l[field]; ok {
			return n
		}
		i := strings.LastIndexAny(field, ".[")
		if i < 0 {
			break
		}
		field = field[:i]
	}
	return 0
}

type problems struct {
	lines lines
	list  []Problem
}

func (ps *problems) add(field, format string, args ...any) {
	ps.list = append(ps.list, Problem{Field: field, Line: ps.lines.line(field), Message: fmt.Sprintf(format, args...)})
}

// Validate checks a DAG built in code (Parse validates what it decodes).
func (d *DAG) Validate() error { return d.validate(nil) }

func dagIDByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

func taskIDByte(c byte) bool { return dagIDByte(c) || c == '.' }

func only(s string, maxLen int, ok func(byte) bool) bool {
	if s == "" || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

// ValidDagID reports whether s is a well-formed dag_id: 1-200 characters
// of [A-Za-z0-9_-] (no dots: the id is a token of KV keys).
func ValidDagID(s string) bool { return only(s, 200, dagIDByte) }

func (d *DAG) validate(l lines) error {
	ps := &problems{lines: l}
	if !ValidDagID(d.DagID) {
		ps.add("dag_id", "dag_id %q must be 1-200 characters of [A-Za-z0-9_-]", d.DagID)
	}
	if d.MaxActiveRuns < 0 {
		ps.add("max_active_runs", "must not be negative")
	}
	if d.MaxActiveTasks < 0 {
		ps.add("max_active_tasks", "must not be negative")
	}
	if d.MapSizeMax < 0 {
		ps.add("max_map_length", "must not be negative")
	}
	if d.Timezone != "" {
		if _, err := time.LoadLocation(d.Timezone); err != nil {
			ps.add("timezone", "unknown time zone %q", d.Timezone)
		}
	}
	if d.Schedule != "" {
		if _, err := d.ParsedSchedule(); err != nil {
			ps.add("schedule", "%v", err)
		}
	}
	validateCallback(ps, "on_success_callback", d.OnSuccess)
	validateCallback(ps, "on_failure_callback", d.OnFailure)
	validateDefaults(ps, &d.DefaultArgs)

	switch {
	case len(d.Tasks) == 0:
		ps.add("tasks", "a DAG needs at least one task")
	case len(d.Tasks) > TasksMax:
		ps.add("tasks", "%d tasks exceed the limit of %d", len(d.Tasks), TasksMax)
	}
	index := make(map[string]int, len(d.Tasks))
	for i := range d.Tasks {
		t := &d.Tasks[i]
		f := fmt.Sprintf("tasks[%d]", i)
		if !only(t.TaskID, 250, taskIDByte) {
			ps.add(f+".task_id", "task_id %q must be 1-250 characters of [A-Za-z0-9_.-]", t.TaskID)
			continue
		}
		if j, dup := index[t.TaskID]; dup {
			ps.add(f+".task_id", "duplicate task_id %q (also tasks[%d], line %d)", t.TaskID, j, ps.lines.line(fmt.Sprintf("tasks[%d]", j)))
			continue
		}
		index[t.TaskID] = i
	}
	mapMax := d.MapSizeMax
	if mapMax == 0 {
		mapMax = MapSizeMaxDefault
	}
	for i := range d.Tasks {
		t := &d.Tasks[i]
		f := fmt.Sprintf("tasks[%d]", i)
		q := t.Queue
		if q == "" {
			q = d.DefaultArgs.Queue
		}
		if q == "" {
			ps.add(f+".queue", "task %s needs a queue (or default_args.queue)", t.TaskID)
		} else if err := activity.ValidateQueue(q); err != nil {
			ps.add(f+".queue", "%v", unwrapInvalid(err))
		}
		switch {
		case len(t.Command) == 0 && t.Task == "":
			ps.add(f, "task %s needs a command or a task", t.TaskID)
		case len(t.Command) > 0 && t.Task != "":
			ps.add(f+".command", "task %s has both a command and a task", t.TaskID)
		case len(t.Command) > 0 && t.Command[0] == "":
			ps.add(f+".command", "empty program")
		}
		if t.TriggerRule != "" && !t.TriggerRule.Valid() {
			ps.add(f+".trigger_rule", "unknown trigger rule %q (want one of %s)", t.TriggerRule, ruleNames())
		}
		if t.Retries != nil && (*t.Retries < 0 || *t.Retries > 100) {
			ps.add(f+".retries", "%d out of range 0-100", *t.Retries)
		}
		for name, dur := range map[string]*activity.Duration{"retry_delay": t.RetryDelay, "max_retry_delay": t.MaxRetryDelay, "execution_timeout": t.ExecutionTimeout} {
			if dur != nil && *dur < 0 {
				ps.add(f+"."+name, "must not be negative")
			}
		}
		if t.PoolSlots != nil && *t.PoolSlots < 1 {
			ps.add(f+".pool_slots", "must be at least 1")
		}
		if t.MaxActiveTisPerDag != nil && *t.MaxActiveTisPerDag < 0 {
			ps.add(f+".max_active_tis_per_dag", "must not be negative")
		}
		if t.Pool != "" && activity.ValidatePool(t.Pool) != nil {
			ps.add(f+".pool", "%q must be 1-250 characters of [A-Za-z0-9_-]", activity.CutValue(t.Pool))
		}
		validateCallbacks(ps, f+".callbacks", t.Callbacks)
		seen := map[string]bool{}
		for _, up := range t.DependsOn {
			switch _, ok := index[up]; {
			case up == t.TaskID:
				ps.add(f+".depends_on", "task %s depends on itself", t.TaskID)
			case !ok:
				ps.add(f+".depends_on", "unknown upstream task %q", up)
			case seen[up]:
				ps.add(f+".depends_on", "upstream %q named twice", up)
			}
			seen[up] = true
		}
		if len(t.Expand) > 1 {
			ps.add(f+".expand", "expand takes one argument, got %d", len(t.Expand))
		}
		for name, x := range t.Expand {
			xf := f + ".expand." + name
			switch {
			case name == "":
				ps.add(f+".expand", "empty argument name")
			case x.From == "" && len(x.Literal) > mapMax:
				ps.add(xf, "%d elements exceed the map size limit of %d", len(x.Literal), mapMax)
			case x.From == "":
			case x.From == t.TaskID:
				ps.add(xf+".from", "task %s expands over itself", t.TaskID)
			default:
				if _, ok := index[x.From]; !ok {
					ps.add(xf+".from", "unknown upstream task %q", x.From)
				} else if !seen[x.From] {
					// Expanding over an upstream's XCom depends on it.
					t.DependsOn = append(t.DependsOn, x.From)
					seen[x.From] = true
				}
			}
		}
	}
	if len(ps.list) == 0 {
		if cyc := d.cycle(); cyc != nil {
			i := index[cyc[0]]
			ps.add(fmt.Sprintf("tasks[%d].depends_on", i), "cycle: %s", strings.Join(cyc, " → "))
		}
	}
	if len(ps.list) == 0 {
		for i := range d.Tasks {
			if d.Tasks[i].TriggerRule == "" {
				d.Tasks[i].TriggerRule = d.DefaultArgs.TriggerRule
			}
		}
	}
	if len(ps.list) > 0 {
		sort.SliceStable(ps.list, func(i, j int) bool {
			li, lj := ps.list[i].Line, ps.list[j].Line
			return li > 0 && (lj == 0 || li < lj)
		})
		return &ValidationError{Problems: ps.list}
	}
	return nil
}

func unwrapInvalid(err error) string {
	return strings.TrimPrefix(err.Error(), activity.ErrInvalid.Error()+": ")
}

func ruleNames() string {
	names := make([]string, len(TriggerRules))
	for i, r := range TriggerRules {
		names[i] = string(r)
	}
	return strings.Join(names, ", ")
}

func validateDefaults(ps *problems, a *TaskDefaults) {
	if a.Queue != "" {
		if err := activity.ValidateQueue(a.Queue); err != nil {
			ps.add("default_args.queue", "%v", unwrapInvalid(err))
		}
	}
	if a.TriggerRule != "" && !a.TriggerRule.Valid() {
		ps.add("default_args.trigger_rule", "unknown trigger rule %q (want one of %s)", a.TriggerRule, ruleNames())
	}
	if a.Retries != nil && (*a.Retries < 0 || *a.Retries > 100) {
		ps.add("default_args.retries", "%d out of range 0-100", *a.Retries)
	}
	if a.PoolSlots != nil && *a.PoolSlots < 1 {
		ps.add("default_args.pool_slots", "must be at least 1")
	}
	if a.Pool != "" && activity.ValidatePool(a.Pool) != nil {
		ps.add("default_args.pool", "%q must be 1-250 characters of [A-Za-z0-9_-]", activity.CutValue(a.Pool))
	}
	validateCallbacks(ps, "default_args.callbacks", a.Callbacks)
}

func validateCallbacks(ps *problems, field string, cbs activity.Callbacks) {
	validateCallback(ps, field+".on_success", cbs.OnSuccess)
	validateCallback(ps, field+".on_failure", cbs.OnFailure)
	validateCallback(ps, field+".on_retry", cbs.OnRetry)
}

func validateCallback(ps *problems, field string, cb *activity.Callback) {
	if cb == nil {
		return
	}
	switch {
	case len(cb.Command) == 0 && cb.Task == "":
		ps.add(field, "callback needs a command or a task")
	case len(cb.Command) > 0 && cb.Task != "":
		ps.add(field, "callback has both a command and a task")
	}
	if cb.Queue != "" {
		if err := activity.ValidateQueue(cb.Queue); err != nil {
			ps.add(field+".queue", "%v", unwrapInvalid(err))
		}
	}
}

// cycle returns the task ids of one dependency cycle, its first task
// repeated at the end, or nil.
func (d *DAG) cycle() []string {
	ups := make(map[string][]string, len(d.Tasks))
	for _, t := range d.Tasks {
		ups[t.TaskID] = t.DependsOn
	}
	const (
		white = iota
		grey
		black
	)
	color := make(map[string]int, len(d.Tasks))
	var stack []string
	var found []string
	var visit func(id string) bool
	visit = func(id string) bool {
		color[id] = grey
		stack = append(stack, id)
		for _, up := range ups[id] {
			switch color[up] {
			case grey:
				for i, s := range stack {
					if s == up {
						found = append(append([]string{}, stack[i:]...), up)
						// Upstream order reads as dependency order.
						for a, b := 0, len(found)-1; a < b; a, b = a+1, b-1 {
							found[a], found[b] = found[b], found[a]
						}
					}
				}
				return true
			case white:
				if visit(up) {
					return true
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[id] = black
		return false
	}
	for _, t := range d.Tasks {
		if color[t.TaskID] == white && visit(t.TaskID) {
			return found
		}
	}
	return nil
}

// ParseSchedule parses the DAG's schedule in its time zone (robfig/cron's
// standard syntax: five fields, @hourly, @daily, @weekly, @monthly,
// @yearly, @every DURATION). It returns nil for a DAG with no schedule.
func (d *DAG) ParseSchedule() (cron.Schedule, error) {
	if d.Schedule == "" {
		return nil, nil
	}
	if strings.HasPrefix(d.Schedule, "TZ=") || strings.HasPrefix(d.Schedule, "CRON_TZ=") {
		return nil, errors.New("give the time zone in the timezone field, not in the schedule")
	}
	spec := d.Schedule
	if d.Timezone != "" && !strings.HasPrefix(spec, "@every") {
		spec = "CRON_TZ=" + d.Timezone + " " + spec
	}
	s, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, fmt.Errorf("bad schedule %q: %w", d.Schedule, err)
	}
	return s, nil
}
