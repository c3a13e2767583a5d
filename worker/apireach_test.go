package worker

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/taskwire/taskwire/execution"
)

func TestAPILimit(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		zombie, grace, beat  time.Duration
		wantLimit, wantGrace time.Duration
	}{
		{"defaults", 30 * time.Second, 5 * time.Second, 5 * time.Second, 22 * time.Second, 5 * time.Second},
		{"unknown_threshold", 0, 5 * time.Second, 5 * time.Second, 22 * time.Second, 5 * time.Second},
		{"split_brain_test", 8 * time.Second, time.Second, 300 * time.Millisecond, 6200 * time.Millisecond, time.Second},
		{"grace_cut", 3 * time.Second, time.Second, 300 * time.Millisecond, 2200 * time.Millisecond, 500 * time.Millisecond},
		{"small", 1500 * time.Millisecond, time.Second, 300 * time.Millisecond, 1000 * time.Millisecond, 250 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &Worker{cfg: Config{KillGrace: tc.grace, HeartbeatInterval: tc.beat}}
			limit, grace := w.apiLimit(slog.New(slog.DiscardHandler), tc.zombie)
			if limit != tc.wantLimit || grace != tc.wantGrace {
				t.Fatalf("apiLimit(%s) = %s, %s; want %s, %s", tc.zombie, limit, grace, tc.wantLimit, tc.wantGrace)
			}
			z := tc.zombie
			if z == 0 {
				z = zombieThresholdAssumed
			}
			if limit+grace >= z {
				t.Fatalf("limit %s + grace %s reach the threshold %s", limit, grace, z)
			}
		})
	}
}

func TestAPIReachNote(t *testing.T) {
	a := newAPIReach()
	if changed, down := a.note(&execution.APIError{Status: 409}); changed || down {
		t.Fatal("a refusal counts as reached")
	}
	if changed, down := a.note(errors.New("dial tcp: i/o timeout")); !changed || !down {
		t.Fatal("a dial timeout must take the API down")
	}
	select {
	case <-a.upC():
		t.Fatal("up while down")
	default:
	}
	if changed, down := a.note(&execution.APIError{Status: 503}); changed || !down {
		t.Fatal("a 503 keeps it down")
	}
	up := a.upC()
	if changed, down := a.note(nil); !changed || down {
		t.Fatal("a success brings it back")
	}
	select {
	case <-up:
	default:
		t.Fatal("waiters not woken when the API came back")
	}
}
