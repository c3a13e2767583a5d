package executor

import (
	"testing"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/queue"
)

// A record that ends between what memory knows and what the bucket holds
// (its end written, this executor not told yet: another executor's write,
// or its own before the write's answer is remembered) is listed once, not
// once as unfinished from memory and again as finished from the bucket.
// (The fleet bench counted one task twice: a negative redelivery count.)
func TestListShowsARecordEndingMeanwhileOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{})
	kv := f.q.Bucket(queue.BucketTaskInstances)
	s := newStore(kv, f.q.Bucket(queue.BucketConfig), 10, f.ex.log) // no watch: told only by remember
	ti := &activity.TaskInstance{ID: "ending", Queue: "q", TryNumber: 1, State: activity.StateRunning}
	raw, err := ti.MarshalRecord()
	if err != nil {
		t.Fatal(err)
	}
	rev, err := kv.Create(t.Context(), ti.ID, raw)
	if err != nil {
		t.Fatal(err)
	}
	s.remember(ti, raw, rev, nil)
	ended := ti.Clone()
	ended.State = activity.StateSuccess
	raw, err = ended.MarshalRecord()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Update(t.Context(), ti.ID, raw, rev); err != nil {
		t.Fatal(err)
	}
	for _, limit := range []int{0, 1} {
		seen := 0
		for fl := (Filter{Limit: limit}); ; {
			page, err := s.list(t.Context(), fl)
			if err != nil {
				t.Fatal(err)
			}
			for _, got := range page.TIs {
				if got.ID == ti.ID {
					seen++
				}
			}
			if page.Next == "" {
				break
			}
			fl.Cursor = page.Next
		}
		if seen != 1 {
			t.Errorf("pages of %d: the record listed %d times, want once", limit, seen)
		}
	}
}
