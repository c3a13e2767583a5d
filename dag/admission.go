package dag

import "sort"

// Admit is admission: of the task instances whose trigger rule passed
// (candidates), it returns those to queue now, highest priority_weight
// first (then upstream first, then map index), within the DAG's
// max_active_tasks for the run. The others stay undecided and are
// admitted by a later evaluation, when an instance of the run ends.
//
// It is the one place that decides whether a ready task instance is
// published: pools and other limits belong here.
func Admit(d *DAG, r *Run, candidates []Ref) []Ref {
	if len(candidates) == 0 {
		return nil
	}
	weight := func(ref Ref) int {
		if t := d.Task(ref.TaskID); t != nil {
			if t.PriorityWeight != nil {
				return *t.PriorityWeight
			}
			if d.DefaultArgs.PriorityWeight != nil {
				return *d.DefaultArgs.PriorityWeight
			}
		}
		return 1
	}
	if d.weighted() {
		sort.SliceStable(candidates, func(i, j int) bool { return weight(candidates[i]) > weight(candidates[j]) })
	}
	if d.MaxActiveTasks <= 0 {
		return candidates
	}
	free := d.MaxActiveTasks - r.Active()
	if free <= 0 {
		return nil
	}
	if len(candidates) > free {
		candidates = candidates[:free]
	}
	return candidates
}

// weighted reports whether any task's priority_weight (or the default's)
// is set: else every weight is 1 and the order stays.
func (d *DAG) weighted() bool {
	if d.DefaultArgs.PriorityWeight != nil {
		return true
	}
	for i := range d.Tasks {
		if d.Tasks[i].PriorityWeight != nil {
			return true
		}
	}
	return false
}
