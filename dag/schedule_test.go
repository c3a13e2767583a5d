package dag

import (
	"testing"
	"time"
)

func TestNextRun(t *testing.T) {
	t.Parallel()
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	start := at("2026-12-01T00:00:00Z")
	tests := []struct {
		name     string
		schedule string
		tz       string
		catchup  bool
		start    *time.Time
		last     string
		now      string
		want     string
	}{
		{"hourly", "@hourly", "", false, nil, "", "2026-12-03T10:20:00Z", "2026-12-03T11:00:00Z"},
		{"daily_tz", "@daily", "Europe/Paris", false, nil, "", "2026-12-03T10:20:00Z", "2026-12-03T23:00:00Z"},
		{"cron_tz", "30 2 * * *", "America/New_York", false, nil, "", "2026-12-03T10:20:00Z", "2026-12-04T07:30:00Z"},
		{"no_catchup_skips_missed", "@hourly", "", false, &start, "2026-12-02T05:00:00Z", "2026-12-03T10:20:00Z", "2026-12-03T11:00:00Z"},
		{"catchup_from_start", "@daily", "", true, &start, "", "2026-12-03T10:20:00Z", "2026-12-01T00:00:00Z"},
		{"catchup_from_last", "@daily", "", true, &start, "2026-12-01T00:00:00Z", "2026-12-03T10:20:00Z", "2026-12-02T00:00:00Z"},
		{"every_anchored", "@every 90m", "", false, &start, "", "2026-12-01T02:00:00Z", "2026-12-01T03:00:00Z"},
		{"every_on_tick", "@every 90m", "", false, &start, "", "2026-12-01T03:00:00Z", "2026-12-01T04:30:00Z"},
		{"every_before_start", "@every 1h", "", false, &start, "", "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"},
		{"every_epoch", "@every 1h", "", false, nil, "", "2026-12-03T10:20:00Z", "2026-12-03T11:00:00Z"},
		{"weekly", "@weekly", "", false, nil, "", "2026-12-03T10:20:00Z", "2026-12-06T00:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := &DAG{DagID: "s", Schedule: tt.schedule, Timezone: tt.tz, Catchup: tt.catchup, StartDate: tt.start}
			var last time.Time
			if tt.last != "" {
				last = at(tt.last)
			}
			got, err := d.NextRun(last, at(tt.now))
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(at(tt.want)) {
				t.Fatalf("got %s, want %s", got.Format(time.RFC3339), tt.want)
			}
		})
	}
	if got := RunIDScheduled(at("2026-12-03T11:00:00Z")); got != "scheduled__2026-12-03T11:00:00Z" {
		t.Fatalf("run id %s", got)
	}
}
