package dag

import (
	"testing"

	"github.com/taskwire/taskwire/activity"
)

// pairs are every multiset of two upstream states, in the order of the
// want strings below: P (not ended), s success, f failed, u
// upstream_failed, k skipped, r removed.
var pairs = []string{"PP", "Ps", "Pf", "Pu", "Pk", "Pr", "ss", "sf", "su", "sk", "sr",
	"ff", "fu", "fk", "fr", "uu", "uk", "ur", "kk", "kr", "rr"}

var stateOf = map[byte]activity.State{
	'P': activity.StateRunning, 's': activity.StateSuccess, 'f': activity.StateFailed,
	'u': StateUpstreamFailed, 'k': activity.StateSkipped, 'r': activity.StateRemoved,
	'q': activity.StateQueued, 'n': StateNone, 'c': activity.StateCancelled, 'd': activity.StateDeferred,
	'y': activity.StateUpForRetry, 'S': StateScheduled,
}

var decisionOf = map[byte]Decision{'W': Wait, 'R': Pass, 'S': Skip, 'U': UpstreamFailed}

func counts(states string) Counts {
	var c Counts
	for i := 0; i < len(states); i++ {
		c.Add(stateOf[states[i]])
	}
	return c
}

// TestDecidePairs checks every rule against every combination of two
// upstream states; the expectations are Airflow's (trigger_rule_dep.py),
// worked out by hand, one letter per pair: W wait, R run, S skip, U
// upstream_failed.
func TestDecidePairs(t *testing.T) {
	t.Parallel()
	want := map[TriggerRule]string{
		AllSuccess:              "WWUUSWRUUSRUUUUUUUSSR",
		AllFailed:               "WSWWSWSSSSSRRSRRSRSSR",
		AllDone:                 "WWWWWWRRRRRRRRRRRRRRR",
		OneSuccess:              "WRWWWWRRRRRUUUUUUUSUU",
		OneFailed:               "WWRRWWSRRSSRRRRRRRSSS",
		OneDone:                 "WRRWWWRRRRRRRRRSSSSSS",
		NoneFailed:              "WWUUWWRUURRUUUUUUURRR",
		NoneFailedMinOneSuccess: "WWUUWWRUURRUUUUUUUSSS",
		NoneSkipped:             "WWWWSWRRRSRRRSRRSRSSR",
		AllSkipped:              "WSSSWWSSSSSSSSSSSSRRR",
		Always:                  "RRRRRRRRRRRRRRRRRRRRR",
	}
	if len(want) != len(TriggerRules) {
		t.Fatalf("table covers %d rules, there are %d", len(want), len(TriggerRules))
	}
	for _, r := range TriggerRules {
		w := want[r]
		if len(w) != len(pairs) {
			t.Fatalf("%s: %d expectations for %d pairs", r, len(w), len(pairs))
		}
		for i, p := range pairs {
			got := r.Decide(counts(p))
			if got != decisionOf[w[i]] {
				t.Errorf("%s upstream %s: got %s, want %s", r, p, got, decisionOf[w[i]])
			}
			// The order of upstreams does not matter.
			if rev := string([]byte{p[1], p[0]}); r.Decide(counts(rev)) != got {
				t.Errorf("%s upstream %s: differs from %s", r, rev, p)
			}
		}
	}
}

// TestDecideSingleAndMore covers one upstream, none, three and the states
// that count as not ended.
func TestDecideSingleAndMore(t *testing.T) {
	t.Parallel()
	tests := []struct {
		rule TriggerRule
		ups  string
		want Decision
	}{
		{AllSuccess, "", Pass},
		{AllFailed, "", Pass},
		{OneSuccess, "", Pass},
		{AllSuccess, "s", Pass},
		{AllSuccess, "f", UpstreamFailed},
		{AllSuccess, "c", UpstreamFailed}, // cancelled counts as failed
		{AllSuccess, "k", Skip},
		{AllSuccess, "q", Wait},
		{AllSuccess, "n", Wait},
		{AllSuccess, "S", Wait},
		{AllSuccess, "d", Wait},
		{AllSuccess, "y", Wait}, // up_for_retry has not ended
		{AllSuccess, "sss", Pass},
		{AllSuccess, "ssP", Wait},
		{AllSuccess, "ssf", UpstreamFailed},
		{AllSuccess, "Pyf", UpstreamFailed}, // fails without waiting for the others
		{AllDone, "sfk", Pass},
		{AllDone, "sfy", Wait},
		{OneFailed, "PPf", Pass},
		{OneSuccess, "PPs", Pass},
		{OneSuccess, "kkk", Skip},
		{OneSuccess, "kfk", UpstreamFailed},
		{NoneFailedMinOneSuccess, "kks", Pass},
		{NoneFailedMinOneSuccess, "kkk", Skip},
		{NoneFailed, "kkk", Pass},
		{AllSkipped, "kkP", Wait},
		{NoneSkipped, "sfu", Pass},
		{OneDone, "uuu", Skip},
		{OneDone, "uuP", Wait},
		{Always, "fff", Pass},
	}
	for _, tt := range tests {
		if got := tt.rule.Decide(counts(tt.ups)); got != tt.want {
			t.Errorf("%s upstream %q: got %s, want %s", tt.rule, tt.ups, got, tt.want)
		}
	}
}

func TestTriggerRuleValid(t *testing.T) {
	t.Parallel()
	for _, r := range TriggerRules {
		if !r.Valid() {
			t.Errorf("%s not valid", r)
		}
	}
	for _, r := range []TriggerRule{"", "ALL_SUCCESS", "dummy", "all_done_setup_success"} {
		if r.Valid() {
			t.Errorf("%q valid", r)
		}
	}
}
