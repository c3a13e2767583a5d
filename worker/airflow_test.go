package worker

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/taskwire/taskwire/protocol"
)

func TestPySlice(t *testing.T) {
	p := func(n int) *int { return &n }
	for _, tc := range []struct {
		start, stop, step *int
		want              []int
	}{
		{nil, nil, nil, []int{0, 1, 2, 3, 4}},
		{p(1), p(3), nil, []int{1, 2}},
		{p(-2), nil, nil, []int{3, 4}},
		{nil, nil, p(2), []int{0, 2, 4}},
		{nil, nil, p(-1), []int{4, 3, 2, 1, 0}},
		{p(3), p(0), p(-1), []int{3, 2, 1}},
		{p(10), nil, nil, nil},
		{nil, p(-10), nil, nil},
	} {
		if got := pySlice(5, tc.start, tc.stop, tc.step); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("slice(%v, %v, %v) = %v, want %v", tc.start, tc.stop, tc.step, got, tc.want)
		}
	}
}

func TestAirflowRunType(t *testing.T) {
	for _, tc := range [][3]string{
		{"", "manual__2026", "manual"}, {"", "scheduled__2026", "scheduled"}, {"backfill", "x", "backfill"},
		{"", "my-run", "manual"}, {"weird", "asset_triggered__x", "asset_triggered"},
	} {
		if got := airflowRunType(tc[0], tc[1]); got != tc[2] {
			t.Errorf("airflowRunType(%q, %q) = %q, want %q", tc[0], tc[1], got, tc[2])
		}
	}
}

func TestAirflowTrigger(t *testing.T) {
	moment := map[string]any{"__classname__": "pendulum.datetime.DateTime", "__version__": int64(2), "__data__": map[string]any{
		"timestamp": 1796608800.25, "tz": map[string]any{"__classname__": "builtins.tuple", "__data__": []any{"UTC"}}}}
	cp, kw, end := airflowTrigger("airflow.providers.standard.triggers.temporal.DateTimeTrigger", map[string]any{"moment": moment, "end_from_trigger": false})
	if cp != "taskwire.triggers.DateTime" || !reflect.DeepEqual(kw, map[string]any{"moment": "2026-12-07T02:00:00.25Z"}) || end {
		t.Errorf("DateTimeTrigger → %s %v end %v", cp, kw, end)
	}
	if _, _, end := airflowTrigger("airflow.providers.standard.triggers.temporal.DateTimeTrigger", map[string]any{"moment": moment, "end_from_trigger": true}); !end {
		t.Error("DateTimeTrigger end_from_trigger=True: EndFromTrigger not set")
	}
	cp, kw, end = airflowTrigger("airflow.triggers.temporal.TimeDeltaTrigger", map[string]any{"delta": map[string]any{"__classname__": "datetime.timedelta", "__data__": 1.5}, "end_from_trigger": true})
	if cp != "taskwire.triggers.TimeDelta" || !reflect.DeepEqual(kw, map[string]any{"delta": "1.5s"}) || !end {
		t.Errorf("TimeDeltaTrigger → %s %v end %v", cp, kw, end)
	}
	in := map[string]any{"x": int64(1), "end_from_trigger": true}
	if cp, kw, end := airflowTrigger("dags.triggers.Custom", in); cp != "taskwire.triggers.Airflow" ||
		!reflect.DeepEqual(kw, map[string]any{"classpath": "dags.triggers.Custom", "kwargs": in}) || end {
		t.Errorf("custom → %s %v end %v (its own events end the task)", cp, kw, end)
	}
}

// The worker's answer to GetTaskRescheduleStartDate is the pinned SDK's
// TaskRescheduleStartDate frame, byte for byte (protocol/testdata/airflow,
// written by the SDK's own encoder), with a start date and without one.
func TestAirflowRescheduleStartDateGolden(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 8, 15, 30, 123456000, time.UTC)
	for name, first := range map[string]*time.Time{"resp_TaskRescheduleStartDate": &t0, "resp_TaskRescheduleStartDateNone": nil} {
		golden, err := os.ReadFile(filepath.Join("..", "protocol", "testdata", "airflow", name+".bin"))
		if err != nil {
			t.Fatal(err)
		}
		want, err := protocol.DecodeAirflowResponse(golden)
		if err != nil {
			t.Fatal(err)
		}
		j := &job{firstRescheduleAt: first}
		resp, term := j.answerAirflow(t.Context(), protocol.Map{{Key: "ti_id", Value: "x"}, {Key: "try_number", Value: int64(1)},
			{Key: "type", Value: "GetTaskRescheduleStartDate"}})
		if term != nil {
			t.Fatalf("%s: terminal %+v", name, term)
		}
		resp.ID = want.ID
		got, err := protocol.EncodeAirflowResponse(resp)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, golden) {
			t.Errorf("%s:\n got %x\nwant %x", name, got, golden)
		}
	}
}
