package executor

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
)

// The waitlist keeps its instances in admission order (highest weight,
// first queued, then id) through any sequence of adds and removes, the
// compaction of removed entries included.
func TestWaitlistOrder(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var wl waitlist
	in := map[string]*activity.TaskInstance{}
	for step := range 20_000 {
		if len(in) > 0 && rng.IntN(3) == 0 {
			for id, ti := range in { // remove one
				wl.remove(ti)
				delete(in, id)
				break
			}
		} else {
			at := base.Add(time.Duration(rng.IntN(50)) * time.Millisecond)
			if rng.IntN(4) > 0 {
				at = base.Add(time.Duration(step) * time.Millisecond) // mostly queued after the others
			}
			ti := &activity.TaskInstance{ID: fmt.Sprintf("ti-%05d", step), PriorityWeight: rng.IntN(3), QueuedAt: &at}
			wl.add(ti)
			in[ti.ID] = ti
		}
		if step%997 != 0 && step != 19_999 {
			continue
		}
		want := make([]*activity.TaskInstance, 0, len(in))
		for _, ti := range in {
			want = append(want, ti)
		}
		slices.SortFunc(want, func(a, b *activity.TaskInstance) int {
			if a.PriorityWeight != b.PriorityWeight {
				return b.PriorityWeight - a.PriorityWeight
			}
			if c := a.QueuedAt.Compare(*b.QueuedAt); c != 0 {
				return c
			}
			return strings.Compare(a.ID, b.ID)
		})
		got := wl.appendTo(nil)
		if wl.len() != len(want) || !slices.Equal(got, want) {
			t.Fatalf("step %d: %d in the waitlist (len %d), want %d in order", step, len(got), wl.len(), len(want))
		}
	}
	if wl.dead > 32 && wl.dead > len(wl.es)/2 {
		t.Errorf("%d dead of %d entries: not compacted", wl.dead, len(wl.es))
	}
}
