package dag

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/taskwire/taskwire/activity"
)

// RunState is a DAG run's state.
type RunState string

// Run states (Airflow's).
const (
	RunQueued  RunState = "queued"
	RunRunning RunState = "running"
	RunSuccess RunState = "success"
	RunFailed  RunState = "failed"
)

// Finished reports whether a run in state s has ended.
func (s RunState) Finished() bool { return s == RunSuccess || s == RunFailed }

// Run types.
const (
	RunTypeManual    = "manual"
	RunTypeScheduled = "scheduled"
)

// Run is a DAG run's record, stored under its dag_id and run_id and
// changed only by compare-and-set. It pins the DAG version it started
// with and holds every task instance's state as far as the evaluation
// needs it (see [Instance]).
type Run struct {
	DagID       string         `json:"dag_id"`
	RunID       string         `json:"run_id"`
	DagVersion  int            `json:"dag_version"`
	RunType     string         `json:"run_type"`
	State       RunState       `json:"state"`
	LogicalDate time.Time      `json:"logical_date"`
	Conf        map[string]any `json:"conf,omitempty"`
	QueuedAt    time.Time      `json:"queued_at"`
	StartDate   *time.Time     `json:"start_date,omitempty"`
	EndDate     *time.Time     `json:"end_date,omitempty"`
	UpdatedAt   time.Time      `json:"updated_at"`
	// Clears counts the clears of the run: a cleared instance's new
	// task-instance record gets a new id.
	Clears int `json:"clears,omitempty"`
	// Tasks holds each task's instances by task_id.
	Tasks map[string]*TaskRun `json:"tasks"`

	// open is Evaluate's index of the tasks still to decide (not stored).
	open *openIndex
}

// openIndex lists, for the DAG it was built for, the tasks of a run with
// an undecided instance, upstream first, each with its upstreams' parts
// of the run and their counts by state, kept up to date as upstream
// instances change state ([Run.moved]): an evaluation visits only the
// open tasks and reads their counts, so an end in a 1 → n → 1 run costs
// it no walk over the n decided tasks and no recount of the fan-in's n
// upstreams. Instances only leave StateNone in Evaluate (which keeps the
// list) and only [Run.Clear] makes them undecided again (which drops
// it), and [Run.SkipDownstream] decides some outside Evaluate (which
// drops it too); a Run decoded afresh has none.
type openIndex struct {
	d     *DAG
	tasks []*openTask
	// down holds, by task id, the open tasks downstream of it.
	down map[string][]*openTask
}

type openTask struct {
	t   *Task
	tr  *TaskRun
	ups []*TaskRun
	// c counts the upstream instances by state once counted.
	c       Counts
	counted bool
}

// openTasks returns the run's open index for d, building it when needed.
func (r *Run) openTasks(d *DAG) *openIndex {
	if r.open != nil && r.open.d == d {
		return r.open
	}
	ix := &openIndex{d: d, down: map[string][]*openTask{}}
	for _, t := range d.topo() {
		tr := r.Tasks[t.TaskID]
		if tr == nil || !tr.undecided() {
			continue
		}
		ot := &openTask{t: t, tr: tr, ups: make([]*TaskRun, 0, len(t.DependsOn))}
		for _, up := range t.DependsOn {
			if utr := r.Tasks[up]; utr != nil {
				ot.ups = append(ot.ups, utr)
				ix.down[up] = append(ix.down[up], ot)
			}
		}
		ix.tasks = append(ix.tasks, ot)
	}
	r.open = ix
	return ix
}

// moved keeps the open tasks' counts as an instance of taskID moves from
// state from to state to.
func (r *Run) moved(taskID string, from, to activity.State) {
	if r.open == nil {
		return
	}
	for _, ot := range r.open.down[taskID] {
		if ot.counted {
			ot.c.Remove(from)
			ot.c.Add(to)
		}
	}
}

// reshaped makes the open tasks downstream of taskID count their
// upstreams afresh (its instances were replaced: an expansion).
func (r *Run) reshaped(taskID string) {
	if r.open == nil {
		return
	}
	for _, ot := range r.open.down[taskID] {
		ot.counted = false
	}
}

// counts are ot's upstream instances by state.
func (ot *openTask) counts() Counts {
	if !ot.counted {
		ot.c = Counts{}
		for _, utr := range ot.ups {
			for _, in := range utr.Instances {
				ot.c.Add(in.State)
			}
		}
		ot.counted = true
	}
	return ot.c
}

// TaskRun is one task's part of a run. The record's keys are short: it
// is rewritten whenever an evaluation decides something.
type TaskRun struct {
	// Expanded is set once a mapped task was expanded: Instances then hold
	// map indexes 0..n-1 (none for an empty expansion). Before, and for a
	// task that is not mapped, there is one instance with map index -1.
	Expanded  bool       `json:"x,omitempty"`
	Instances []Instance `json:"i"`
	// Skips are map indexes a SkipDownstream named before the task was
	// expanded (map index → reason): the expansion makes them skipped.
	Skips map[int]string `json:"sk,omitempty"`
}

// Instance is one task instance in a run record. Its State is StateNone
// until its trigger rule decides; StateScheduled once the rule passed and
// its task-instance record TIID was made (that record then has its live
// state); and the instance's final state (success, failed, skipped,
// upstream_failed, removed, cancelled) once it ended. An end is written
// with the run's next decision (or by the scan), not on its own: until
// then only its task-instance record has it (see [Run.ApplyEnds]), so a
// task end that decides nothing costs the run record no write.
type Instance struct {
	MapIndex int            `json:"m"`
	State    activity.State `json:"s,omitempty"`
	// Gen is the run's clear count when the instance was scheduled: its
	// TIID is InstanceID(dag, run, task, map index, Gen).
	Gen int `json:"g,omitempty"`
	// TIID is not stored: UnmarshalRun and Evaluate fill it in.
	TIID string `json:"-"`
	// Try is the try number the instance's last task-instance record
	// reached: a clear starts from it.
	Try    int    `json:"t,omitempty"`
	Reason string `json:"r,omitempty"`
	// Param is the element a mapped instance was made for.
	Param any `json:"p,omitempty"`
}

// NewRun makes the record of a new run of d (at version) in state running
// with every task instance undecided.
func NewRun(d *DAG, version int, runID, runType string, logicalDate time.Time, conf map[string]any, now time.Time) *Run {
	now = now.UTC()
	r := &Run{DagID: d.DagID, RunID: runID, DagVersion: version, RunType: runType, State: RunRunning,
		LogicalDate: logicalDate.UTC(), Conf: conf, QueuedAt: now, StartDate: &now, UpdatedAt: now,
		Tasks: make(map[string]*TaskRun, len(d.Tasks))}
	for _, t := range d.Tasks {
		r.Tasks[t.TaskID] = &TaskRun{Instances: []Instance{{MapIndex: -1}}}
	}
	return r
}

// UnmarshalRun decodes a stored run record.
func UnmarshalRun(b []byte) (*Run, error) {
	var r Run
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode dag run: %w", err)
	}
	if r.Tasks == nil {
		r.Tasks = map[string]*TaskRun{}
	}
	for id, tr := range r.Tasks {
		for i := range tr.Instances {
			if in := &tr.Instances[i]; in.State != StateNone {
				in.TIID = InstanceID(r.DagID, r.RunID, id, in.MapIndex, in.Gen)
			}
		}
	}
	return &r, nil
}

// tiNamespace is the UUID namespace of task-instance ids of DAG runs.
var tiNamespace = uuid.MustParse("6f1c1f0e-5b7e-4c59-9a53-1d2f0c7a1b11")

// InstanceID is the task-instance id of a task instance of a run: a
// name-based UUID of its identity and the run's clear count, so whichever
// executor replica queues it, and however often, it is the same record.
func InstanceID(dagID, runID, taskID string, mapIndex, clears int) string {
	name := dagID + "\x00" + runID + "\x00" + taskID + "\x00" + strconv.Itoa(mapIndex) + "\x00" + strconv.Itoa(clears)
	return uuid.NewSHA1(tiNamespace, []byte(name)).String()
}

// Ref names one task instance of a run.
type Ref struct {
	TaskID   string
	MapIndex int
}

// ExpandSource returns the value a mapped task expands over: the XCom key
// of upstream task taskID in the run (for a mapped upstream, the list of
// its instances' values in map-index order).
type ExpandSource func(taskID, key string) (any, error)

// Evaluation is what [Run.Evaluate] changed.
type Evaluation struct {
	// Ready are the task instances whose trigger rule passed and that were
	// admitted: now StateScheduled, their records to be made and their
	// activities published.
	Ready []Ref
	// Changed reports whether the record changed at all.
	Changed bool
	// Ended reports whether the run reached success or failed now.
	Ended bool
}

// undecided reports whether an instance of the task is still StateNone.
func (tr *TaskRun) undecided() bool {
	for _, in := range tr.Instances {
		if in.State == StateNone {
			return true
		}
	}
	return false
}

// Evaluate decides every undecided task instance it can: it expands
// mapped tasks whose upstreams allow them to run (asking src for the
// values), moves instances to skipped or upstream_failed as their trigger
// rules say, and marks those whose rule passed as scheduled — as many as
// admission allows (see [Admit]). It then sets the run's state. It is a
// pure function of the record, the DAG and src; the executor calls it
// inside a compare-and-set of the record, so its decisions count once.
func (r *Run) Evaluate(d *DAG, src ExpandSource, now time.Time) Evaluation {
	var ev Evaluation
	if r.State.Finished() {
		return ev
	}
	if r.State == RunQueued {
		now := now.UTC()
		r.State, r.StartDate = RunRunning, &now
		ev.Changed = true
	}
	ix := r.openTasks(d)
	var candidates []Ref
	for _, ot := range ix.tasks {
		t, tr := ot.t, ot.tr
		if !tr.undecided() {
			continue
		}
		dec := t.Rule().Decide(ot.counts())
		if dec == Wait {
			continue
		}
		if t.Mapped() && !tr.Expanded && len(tr.Instances) == 1 && tr.Instances[0].State == StateNone {
			if dec != Pass {
				tr.Instances[0].State = decisionState(dec)
				r.moved(t.TaskID, StateNone, tr.Instances[0].State)
				ev.Changed = true
				continue
			}
			r.expand(d, t, tr, src)
			ev.Changed = true
		}
		for i := range tr.Instances {
			in := &tr.Instances[i]
			if in.State != StateNone {
				continue
			}
			if dec == Pass {
				candidates = append(candidates, Ref{TaskID: t.TaskID, MapIndex: in.MapIndex})
				continue
			}
			in.State = decisionState(dec)
			r.moved(t.TaskID, StateNone, in.State)
			ev.Changed = true
		}
	}
	for _, ref := range Admit(d, r, candidates) {
		in := r.Instance(ref.TaskID, ref.MapIndex)
		in.State, in.Gen = StateScheduled, r.Clears
		r.moved(ref.TaskID, StateNone, StateScheduled)
		in.TIID = InstanceID(r.DagID, r.RunID, ref.TaskID, ref.MapIndex, r.Clears)
		ev.Ready = append(ev.Ready, ref)
		ev.Changed = true
	}
	if ev.Changed {
		kept := ix.tasks[:0]
		for _, ot := range ix.tasks {
			if ot.tr.undecided() {
				kept = append(kept, ot)
			}
		}
		clear(ix.tasks[len(kept):])
		ix.tasks = kept
	}
	if st, done := r.outcome(d); done {
		now := now.UTC()
		r.State, r.EndDate = st, &now
		ev.Changed, ev.Ended = true, true
	}
	if ev.Changed {
		r.UpdatedAt = now.UTC()
	}
	return ev
}

func decisionState(d Decision) activity.State {
	if d == Skip {
		return activity.StateSkipped
	}
	return StateUpstreamFailed
}

// expand replaces a mapped task's undecided instance by one per element
// of its expand list; a value that is no list, or a list over the size
// cap, fails the task with the reason, and an empty list skips it
// (Airflow's zero-length expansion).
func (r *Run) expand(d *DAG, t *Task, tr *TaskRun, src ExpandSource) {
	r.reshaped(t.TaskID)
	_, x, _ := t.ExpandArg()
	values := x.Literal
	fail := func(format string, args ...any) {
		tr.Instances[0].State = activity.StateFailed
		tr.Instances[0].Reason = fmt.Sprintf(format, args...)
	}
	if x.From != "" {
		key := x.Key
		if key == "" {
			key = ReturnValueKey
		}
		if src == nil {
			fail("cannot expand over %s's %s: no xcom source", x.From, key)
			return
		}
		v, err := src(x.From, key)
		if err != nil {
			fail("cannot expand over %s's %s: %v", x.From, key, err)
			return
		}
		list, ok := v.([]any)
		if !ok {
			fail("cannot expand over %s's %s: %s is not a list", x.From, key, describe(v))
			return
		}
		values = list
	}
	limit := d.MapSizeMax
	if limit == 0 {
		limit = MapSizeMaxDefault
	}
	if len(values) > limit {
		fail("expand over %d elements exceeds the map size limit of %d (max_map_length)", len(values), limit)
		return
	}
	tr.Expanded = true
	if len(values) == 0 {
		tr.Instances[0].State = activity.StateSkipped
		tr.Instances[0].Reason = "expanded over an empty list"
		tr.Expanded = false
		return
	}
	tr.Instances = make([]Instance, len(values))
	for i, v := range values {
		tr.Instances[i] = Instance{MapIndex: i, Param: v}
		if reason, ok := tr.Skips[i]; ok {
			tr.Instances[i].State, tr.Instances[i].Reason = activity.StateSkipped, reason
		}
	}
	tr.Skips = nil
}

func describe(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case string:
		return "a string"
	case float64, int, int64:
		return "a number"
	case bool:
		return "a boolean"
	}
	return fmt.Sprintf("%T", v)
}

// outcome is the run's state once every instance ended: failed if a leaf
// task (one with no downstream) failed or is upstream_failed, else
// success (Airflow's rule).
func (r *Run) outcome(d *DAG) (RunState, bool) {
	if r.open != nil && r.open.d == d && len(r.open.tasks) > 0 {
		return "", false // a task to decide
	}
	for _, tr := range r.Tasks {
		for _, in := range tr.Instances {
			if !Ended(in.State) {
				return "", false
			}
		}
	}
	hasDown := map[string]bool{}
	for _, t := range d.Tasks {
		for _, up := range t.DependsOn {
			hasDown[up] = true
		}
	}
	failed := false
	for _, t := range d.Tasks {
		tr := r.Tasks[t.TaskID]
		if tr == nil {
			continue
		}
		for _, in := range tr.Instances {
			if !Ended(in.State) {
				return "", false
			}
			if !hasDown[t.TaskID] && (in.State == activity.StateFailed || in.State == StateUpstreamFailed || in.State == activity.StateCancelled) {
				failed = true
			}
		}
	}
	if failed {
		return RunFailed, true
	}
	return RunSuccess, true
}

// Ended reports whether an instance in state s of a run record has ended.
func Ended(s activity.State) bool {
	return s == StateUpstreamFailed || s != StateNone && s != StateScheduled && s.Terminal()
}

// Instance returns the instance of taskID at mapIndex, or nil.
func (r *Run) Instance(taskID string, mapIndex int) *Instance {
	tr := r.Tasks[taskID]
	if tr == nil {
		return nil
	}
	for i := range tr.Instances {
		if tr.Instances[i].MapIndex == mapIndex {
			return &tr.Instances[i]
		}
	}
	return nil
}

// End records that the task-instance record tiID of a scheduled instance
// ended in state st after try `try`. It reports whether the record changed:
// false when the instance ended already or is not tiID (a stale end).
func (r *Run) End(taskID string, mapIndex int, tiID string, st activity.State, try int, reason string) bool {
	in := r.Instance(taskID, mapIndex)
	if in == nil || in.TIID != tiID || in.State != StateScheduled || !Ended(st) {
		return false
	}
	r.moved(taskID, in.State, st)
	in.State, in.Try, in.Reason = st, try, reason
	return true
}

// Knows reports whether tiID is the task-instance record of the run's
// instance of taskID at mapIndex (false for a stale end, made before a
// clear, or a record this copy of the run has not heard of yet).
func (r *Run) Knows(taskID string, mapIndex int, tiID string) bool {
	in := r.Instance(taskID, mapIndex)
	return in != nil && in.TIID == tiID
}

// LiveEnd is the end of a scheduled instance's task-instance record, as
// far as its caller knows: ok false while it has not ended.
type LiveEnd func(tiID string) (st activity.State, try int, reason string, ok bool)

// ApplyEnds records, for every scheduled instance whose task-instance
// record ended (live tells), that end, as [Run.End] does. The run record
// is not rewritten for each end — the task-instance records hold them —
// so an evaluation first brings its copy up to date with this. It
// reports how many ends it applied.
func (r *Run) ApplyEnds(live LiveEnd) int {
	n := 0
	for taskID, tr := range r.Tasks {
		for i := range tr.Instances {
			in := &tr.Instances[i]
			if in.State != StateScheduled || in.TIID == "" {
				continue
			}
			if st, try, reason, ok := live(in.TIID); ok && Ended(st) {
				r.moved(taskID, in.State, st)
				in.State, in.Try, in.Reason = st, try, reason
				n++
			}
		}
	}
	return n
}

// Active counts the run's instances scheduled and not ended.
func (r *Run) Active() int {
	n := 0
	for _, tr := range r.Tasks {
		for _, in := range tr.Instances {
			if in.State == StateScheduled {
				n++
			}
		}
	}
	return n
}

// Clear makes the named tasks' instances (and, with downstream, every
// task downstream of them) undecided again so the run evaluates them
// anew: their next records are new tries. A run that ended runs again.
// It returns how many instances it cleared.
func (r *Run) Clear(d *DAG, taskIDs []string, downstream bool, now time.Time) (int, error) {
	sel := map[string]bool{}
	for _, id := range taskIDs {
		if _, ok := r.Tasks[id]; !ok || d.Task(id) == nil {
			return 0, fmt.Errorf("%w: task %q in dag %s", ErrNotFound, id, r.DagID)
		}
		sel[id] = true
	}
	if len(taskIDs) == 0 {
		for id := range r.Tasks {
			sel[id] = true
		}
	}
	if downstream {
		for changed := true; changed; {
			changed = false
			for _, t := range d.Tasks {
				if sel[t.TaskID] {
					continue
				}
				for _, up := range t.DependsOn {
					if sel[up] {
						sel[t.TaskID], changed = true, true
						break
					}
				}
			}
		}
	}
	n := 0
	for id := range sel {
		tr := r.Tasks[id]
		for _, in := range tr.Instances {
			if in.State == StateScheduled {
				return 0, fmt.Errorf("%w: task %s map_index %d is still running", ErrActive, id, in.MapIndex)
			}
		}
	}
	r.Clears++
	r.open = nil // instances become undecided
	for id := range sel {
		tr := r.Tasks[id]
		try := 0
		for _, in := range tr.Instances {
			try = max(try, in.Try)
		}
		n += len(tr.Instances)
		tr.Expanded, tr.Skips = false, nil
		tr.Instances = []Instance{{MapIndex: -1, Try: try}}
	}
	now = now.UTC()
	r.State, r.EndDate, r.UpdatedAt = RunRunning, nil, now
	return n, nil
}

// ErrActive is matched when an operation needs task instances that still run to end first.
var ErrActive = fmt.Errorf("still active")

// Task returns the task with id, or nil.
func (d *DAG) Task(id string) *Task {
	d.topo()
	if i, ok := d.index[id]; ok && i < len(d.Tasks) && d.Tasks[i].TaskID == id {
		return &d.Tasks[i]
	}
	for i := range d.Tasks {
		if d.Tasks[i].TaskID == id {
			return &d.Tasks[i]
		}
	}
	return nil
}

// topo returns the tasks upstream first (a valid DAG has no cycle): a
// depth-first order from the tasks in document order, each task after its
// upstreams, in O(tasks + edges) once per DAG value (its Tasks must not
// change after the first call).
func (d *DAG) topo() []*Task {
	d.orderOnce.Do(func() {
		d.order = d.topoOrder()
		d.index = make(map[string]int, len(d.Tasks))
		for i, t := range d.Tasks {
			d.index[t.TaskID] = i
		}
	})
	return d.order
}

func (d *DAG) topoOrder() []*Task {
	pos := make(map[string]int, len(d.Tasks))
	for i, t := range d.Tasks {
		pos[t.TaskID] = i
	}
	done := make([]bool, len(d.Tasks))
	out := make([]*Task, 0, len(d.Tasks))
	var visit func(i int)
	visit = func(i int) {
		if done[i] {
			return
		}
		done[i] = true
		for _, up := range d.Tasks[i].DependsOn {
			if j, ok := pos[up]; ok {
				visit(j)
			}
		}
		out = append(out, &d.Tasks[i])
	}
	for i := range d.Tasks {
		visit(i)
	}
	return out
}

// SkipDownstream skips the undecided instances of tasks, which must be
// tasks downstream of from (Airflow's SkipDownstreamTasks, sent by a
// running short-circuit or branch operator): their trigger rules then see
// them skipped. A Ref with map index -1 names every instance of its task;
// one with a map index names that instance only: of a mapped task not
// expanded yet, the index is remembered and skipped at the expansion; of
// a task that is not mapped, it names nothing. Instances already decided
// are left as they are. It returns how many instances it skipped (or
// marked to skip); a task that is not downstream of from is ErrNotFound.
func (r *Run) SkipDownstream(d *DAG, from string, tasks []Ref, now time.Time) (int, error) {
	return r.SkipDownstreamBecause(d, from, tasks, "skipped by "+from, now)
}

// SkipDownstreamBecause is [Run.SkipDownstream] with the skipped
// instances' reason.
func (r *Run) SkipDownstreamBecause(d *DAG, from string, tasks []Ref, reason string, now time.Time) (int, error) {
	down := map[string]bool{from: true}
	for changed := true; changed; {
		changed = false
		for _, t := range d.Tasks {
			if down[t.TaskID] {
				continue
			}
			for _, up := range t.DependsOn {
				if down[up] {
					down[t.TaskID], changed = true, true
					break
				}
			}
		}
	}
	for _, ref := range tasks {
		if id := ref.TaskID; id == from || !down[id] || r.Tasks[id] == nil {
			return 0, fmt.Errorf("%w: task %q is not downstream of %s in dag %s", ErrNotFound, id, from, r.DagID)
		}
		if ref.MapIndex < -1 {
			return 0, fmt.Errorf("%w: task %q map_index %d: want -1 or more", ErrNotFound, ref.TaskID, ref.MapIndex)
		}
	}
	n := 0
	for _, ref := range tasks {
		tr := r.Tasks[ref.TaskID]
		t := d.Task(ref.TaskID)
		if ref.MapIndex >= 0 && t != nil && t.Mapped() && !tr.Expanded &&
			len(tr.Instances) == 1 && tr.Instances[0].State == StateNone {
			if _, ok := tr.Skips[ref.MapIndex]; !ok {
				if tr.Skips == nil {
					tr.Skips = map[int]string{}
				}
				tr.Skips[ref.MapIndex] = reason
				n++
			}
			continue
		}
		for i := range tr.Instances {
			in := &tr.Instances[i]
			if in.State != StateNone || ref.MapIndex >= 0 && in.MapIndex != ref.MapIndex {
				continue
			}
			in.State, in.Reason = activity.StateSkipped, reason
			n++
		}
	}
	if n > 0 {
		r.open = nil // instances left StateNone outside Evaluate: count afresh
		r.UpdatedAt = now.UTC()
	}
	return n, nil
}
