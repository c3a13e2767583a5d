package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/taskwire/taskwire/queue"
)

// runSlots is a DAG's record of the runs holding its max_active_runs
// slots. A run takes a slot by compare-and-set on this record before it
// may go from queued to running, and gives it back when it ends, so two
// executor replicas starting runs at once never run more than
// max_active_runs of a DAG.
type runSlots struct {
	Runs []string `json:"runs"`
}

// errSlotsFull aborts taking a slot when every slot is held.
var errSlotsFull = errors.New("max_active_runs reached")

// takeRunSlot takes one of a DAG's max (> 0) slots for runID; it reports
// whether runID holds one (also when it held it already: a start that a
// crash interrupted goes on). When every slot is held, holders whose runs
// ended or are gone (a crash before they gave theirs back) lose them.
func (e *Executor) takeRunSlot(ctx context.Context, dagID, runID string, max int) (bool, error) {
	_, err := e.dags.store.Runs().Mutate(ctx, queue.DagSlotsKey(dagID), func(old []byte) ([]byte, error) {
		var s runSlots
		if old != nil {
			if err := json.Unmarshal(old, &s); err != nil {
				return nil, fmt.Errorf("decode run slots of %s: %w", dagID, err)
			}
		}
		if slices.Contains(s.Runs, runID) {
			return nil, errUnchanged
		}
		if len(s.Runs) >= max {
			s.Runs = slices.DeleteFunc(s.Runs, func(holder string) bool {
				r, err := e.GetRun(ctx, dagID, holder)
				return errors.Is(err, ErrNotFound) || err == nil && r.State.Finished()
			})
		}
		if len(s.Runs) >= max {
			return nil, errSlotsFull
		}
		s.Runs = append(s.Runs, runID)
		return json.Marshal(&s)
	})
	switch {
	case err == nil, errors.Is(err, errUnchanged):
		return true, nil
	case errors.Is(err, errSlotsFull):
		return false, nil
	}
	return false, err
}

// releaseRunSlot gives back the slot of a run that ended.
func (e *Executor) releaseRunSlot(ctx context.Context, dagID, runID string) error {
	_, err := e.dags.store.Runs().Mutate(ctx, queue.DagSlotsKey(dagID), func(old []byte) ([]byte, error) {
		var s runSlots
		if old == nil {
			return nil, errUnchanged
		}
		if err := json.Unmarshal(old, &s); err != nil {
			return nil, fmt.Errorf("decode run slots of %s: %w", dagID, err)
		}
		if !slices.Contains(s.Runs, runID) {
			return nil, errUnchanged
		}
		s.Runs = slices.DeleteFunc(s.Runs, func(id string) bool { return id == runID })
		return json.Marshal(&s)
	})
	if errors.Is(err, errUnchanged) {
		return nil
	}
	return err
}
