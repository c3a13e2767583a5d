package dag

import "github.com/taskwire/taskwire/activity"

// TriggerRule decides when a task runs given its upstream tasks' states
// (Airflow's trigger rules).
type TriggerRule string

// Trigger rules.
const (
	AllSuccess              TriggerRule = "all_success"
	AllFailed               TriggerRule = "all_failed"
	AllDone                 TriggerRule = "all_done"
	AllSkipped              TriggerRule = "all_skipped"
	OneSuccess              TriggerRule = "one_success"
	OneFailed               TriggerRule = "one_failed"
	OneDone                 TriggerRule = "one_done"
	NoneFailed              TriggerRule = "none_failed"
	NoneFailedMinOneSuccess TriggerRule = "none_failed_min_one_success"
	NoneSkipped             TriggerRule = "none_skipped"
	Always                  TriggerRule = "always"
)

// TriggerRules lists every rule.
var TriggerRules = []TriggerRule{AllSuccess, AllFailed, AllDone, AllSkipped, OneSuccess, OneFailed,
	OneDone, NoneFailed, NoneFailedMinOneSuccess, NoneSkipped, Always}

// Valid reports whether r is a known rule.
func (r TriggerRule) Valid() bool {
	for _, v := range TriggerRules {
		if v == r {
			return true
		}
	}
	return false
}

// StateUpstreamFailed is the state of a task instance that will not run
// because an upstream failed (Airflow's upstream_failed). It exists only
// in a run record: no task-instance record is ever made for it.
const StateUpstreamFailed activity.State = "upstream_failed"

// StateScheduled is the state, in a run record, of a task instance whose
// trigger rule passed: its task-instance record (state queued and on) is
// made under [InstanceID], and from then on that record has its live
// state until it ends.
const StateScheduled activity.State = "scheduled"

// StateNone is a task instance not yet decided (Airflow's None).
const StateNone activity.State = ""

// Decision is what a trigger rule decides for a task instance.
type Decision int

// Decisions.
const (
	// Wait: not decided yet, an upstream has still to end.
	Wait Decision = iota
	// Pass: the rule passed, queue the task instance.
	Pass
	// Skip: move it to skipped without running it.
	Skip
	// UpstreamFailed: move it to upstream_failed without running it.
	UpstreamFailed
)

func (d Decision) String() string {
	switch d {
	case Wait:
		return "wait"
	case Pass:
		return "pass"
	case Skip:
		return "skip"
	case UpstreamFailed:
		return "upstream_failed"
	}
	return "unknown"
}

// Counts are a task's upstream task instances by state. Upstream counts
// every instance (each map index of a mapped upstream); those in none of
// the other counts have not ended.
type Counts struct {
	Upstream       int
	Success        int
	Skipped        int
	Failed         int
	UpstreamFailed int
	Removed        int
}

// Done counts the upstream instances that ended.
func (c Counts) Done() int {
	return c.Success + c.Skipped + c.Failed + c.UpstreamFailed + c.Removed
}

// Add counts one upstream instance in state s: cancelled counts as
// failed; anything not ended counts only in Upstream.
func (c *Counts) Add(s activity.State) {
	c.Upstream++
	switch s {
	case activity.StateSuccess:
		c.Success++
	case activity.StateSkipped:
		c.Skipped++
	case activity.StateFailed, activity.StateCancelled:
		c.Failed++
	case StateUpstreamFailed:
		c.UpstreamFailed++
	case activity.StateRemoved:
		c.Removed++
	}
}

// Remove takes back an Add of state s (an upstream instance that left s).
func (c *Counts) Remove(s activity.State) {
	c.Upstream--
	switch s {
	case activity.StateSuccess:
		c.Success--
	case activity.StateSkipped:
		c.Skipped--
	case activity.StateFailed, activity.StateCancelled:
		c.Failed--
	case StateUpstreamFailed:
		c.UpstreamFailed--
	case activity.StateRemoved:
		c.Removed--
	}
}

// Decide applies rule r to a task instance's upstream counts, as
// Airflow's trigger_rule_dep does: the propagation states first, then
// whether the rule passed.
func (r TriggerRule) Decide(c Counts) Decision {
	if c.Upstream == 0 || r == Always {
		return Pass
	}
	done := c.Done() >= c.Upstream
	failed := c.Failed+c.UpstreamFailed > 0
	// live is the upstream count that matters: removed instances are left
	// out (see the package doc).
	live := c.Upstream - c.Removed
	switch r {
	case AllSuccess:
		switch {
		case failed:
			return UpstreamFailed
		case c.Skipped > 0:
			return Skip
		case c.Success >= live:
			return Pass
		}
	case AllFailed:
		switch {
		case c.Success+c.Skipped > 0:
			return Skip
		case c.Failed+c.UpstreamFailed >= live:
			return Pass
		}
	case AllDone:
		if done {
			return Pass
		}
	case OneSuccess:
		switch {
		case done && c.Done() == c.Skipped:
			return Skip
		case done && c.Success == 0:
			return UpstreamFailed
		case c.Success > 0:
			return Pass
		}
	case OneFailed:
		switch {
		case done && !failed:
			return Skip
		case failed:
			return Pass
		}
	case OneDone:
		switch {
		case done && c.Failed+c.Success == 0:
			return Skip
		case c.Failed+c.Success > 0:
			return Pass
		}
	case NoneFailed:
		switch {
		case failed:
			return UpstreamFailed
		case c.Success+c.Skipped >= live:
			return Pass
		}
	case NoneFailedMinOneSuccess:
		switch {
		case failed:
			return UpstreamFailed
		case c.Skipped >= live:
			return Skip
		case c.Success+c.Skipped >= live:
			return Pass
		}
	case NoneSkipped:
		switch {
		case c.Skipped > 0:
			return Skip
		case done:
			return Pass
		}
	case AllSkipped:
		switch {
		case c.Success+c.Failed+c.UpstreamFailed > 0:
			return Skip
		case c.Skipped >= live:
			return Pass
		}
	}
	return Wait
}
