package executor

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/taskwire/taskwire/activity"
)

// waitlist holds, in admission order, the task instances under one
// admission key that may be admitted (queued at a dispatch): highest
// priority_weight first, then first queued, then by id. It is kept
// sorted as records change (observe), so an admission pass reads the
// first few instead of sorting them all: the pass after each freed slot
// costs the slots it fills, not the number waiting.
//
// Removing marks an entry dead (found by binary search on the key it was
// added with); the dead are dropped when they are more than half. An
// insertion is an append for a task queued after the others at its
// weight (the usual case).
type waitlist struct {
	es   []waitEntry
	dead int
}

// waitEntry is a waiting task instance and the key it is ordered by; ti
// is nil once it is removed.
type waitEntry struct {
	weight int
	queued time.Time
	id     string
	ti     *activity.TaskInstance
}

func waitEntryOf(ti *activity.TaskInstance) waitEntry {
	e := waitEntry{weight: ti.PriorityWeight, id: ti.ID, ti: ti}
	if ti.QueuedAt != nil {
		e.queued = *ti.QueuedAt
	}
	return e
}

// compare orders entries: higher weight, then earlier queued, then id.
func (a waitEntry) compare(b waitEntry) int {
	if c := cmp.Compare(b.weight, a.weight); c != 0 {
		return c
	}
	if c := a.queued.Compare(b.queued); c != 0 {
		return c
	}
	return strings.Compare(a.id, b.id)
}

// mayWait reports whether ti is a candidate for admission.
func mayWait(ti *activity.TaskInstance) bool {
	return ti.State == activity.StateQueued && ti.Dispatch > 0
}

func (w *waitlist) add(ti *activity.TaskInstance) {
	e := waitEntryOf(ti)
	if n := len(w.es); n == 0 || w.es[n-1].compare(e) < 0 {
		w.es = append(w.es, e)
		return
	}
	i, found := slices.BinarySearchFunc(w.es, e, waitEntry.compare)
	if found {
		if w.es[i].ti == nil {
			w.dead--
		}
		w.es[i] = e
		return
	}
	w.es = slices.Insert(w.es, i, e)
}

// remove drops ti, as it was added (the same record).
func (w *waitlist) remove(ti *activity.TaskInstance) {
	i, found := slices.BinarySearchFunc(w.es, waitEntryOf(ti), waitEntry.compare)
	if !found || w.es[i].ti == nil {
		return
	}
	w.es[i].ti = nil
	w.dead++
	if w.dead > 32 && w.dead > len(w.es)/2 {
		w.es = slices.DeleteFunc(w.es, func(e waitEntry) bool { return e.ti == nil })
		w.dead = 0
	}
}

func (w *waitlist) len() int { return len(w.es) - w.dead }

// appendTo appends the waiting instances to dst in admission order.
func (w *waitlist) appendTo(dst []*activity.TaskInstance) []*activity.TaskInstance {
	for _, e := range w.es {
		if e.ti != nil {
			dst = append(dst, e.ti)
		}
	}
	return dst
}
