package trigger_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/trigger"
)

// now is the clock of the Normalize tests.
var now = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

type normalizeCase struct {
	name      string
	classpath string
	kwargs    map[string]any
	timeout   time.Duration
	wantKind  string
	want      map[string]any // stored kwargs, when no error is wanted
	wantErr   string         // a fragment of the error, when one is wanted
}

var normalizeCases = []normalizeCase{
	// datetime
	{name: "datetime_utc", classpath: "datetime", kwargs: map[string]any{"moment": "2026-01-02T03:04:05Z"},
		wantKind: "datetime", want: map[string]any{"moment": "2026-01-02T03:04:05Z"}},
	{name: "datetime_offset_to_utc", classpath: "taskwire.triggers.DateTime", kwargs: map[string]any{"moment": "2026-01-02T05:04:05.5+02:00"},
		wantKind: "datetime", want: map[string]any{"moment": "2026-01-02T03:04:05.5Z"}},
	{name: "datetime_airflow", classpath: "airflow.triggers.temporal.DateTimeTrigger", kwargs: map[string]any{"moment": "2026-01-01T22:04:05-05:00"},
		wantKind: "datetime", want: map[string]any{"moment": "2026-01-02T03:04:05Z"}},
	{name: "datetime_classpath_case", classpath: " TaskWire.Triggers.DATETIME ", kwargs: map[string]any{"moment": "2026-01-02T03:04:05Z"},
		wantKind: "datetime", want: map[string]any{"moment": "2026-01-02T03:04:05Z"}},
	{name: "datetime_python_str", classpath: "datetime", kwargs: map[string]any{"moment": "2026-01-02 03:04:05.123456+00:00"},
		wantKind: "datetime", want: map[string]any{"moment": "2026-01-02T03:04:05.123456Z"}},
	{name: "datetime_time_value", classpath: "datetime", kwargs: map[string]any{"moment": time.Date(2026, 1, 2, 4, 4, 5, 0, time.FixedZone("CET", 3600))},
		wantKind: "datetime", want: map[string]any{"moment": "2026-01-02T03:04:05Z"}},
	{name: "datetime_timeout", classpath: "datetime", kwargs: map[string]any{"moment": "2026-01-02T03:04:05Z"}, timeout: time.Hour,
		wantKind: "datetime", want: map[string]any{"moment": "2026-01-02T03:04:05Z"}},
	{name: "datetime_missing", classpath: "datetime", kwargs: nil, wantErr: `datetime: kwarg "moment" is required`},
	{name: "datetime_null", classpath: "datetime", kwargs: map[string]any{"moment": nil}, wantErr: `datetime: kwarg "moment" is required`},
	{name: "datetime_naive", classpath: "datetime", kwargs: map[string]any{"moment": "2026-01-02T03:04:05"},
		wantErr: `invalid trigger: datetime: kwarg "moment" "2026-01-02T03:04:05" has no time zone (a naive time): give an offset or Z`},
	{name: "datetime_naive_date", classpath: "datetime", kwargs: map[string]any{"moment": "2026-01-02"}, wantErr: "naive"},
	{name: "datetime_garbage", classpath: "datetime", kwargs: map[string]any{"moment": "tomorrow"}, wantErr: `kwarg "moment" "tomorrow" is not an RFC 3339 time`},
	{name: "datetime_number", classpath: "datetime", kwargs: map[string]any{"moment": 1767323045}, wantErr: `kwarg "moment" 1767323045 (int) is not an RFC 3339 time`},
	{name: "datetime_out_of_range", classpath: "datetime", kwargs: map[string]any{"moment": "9999-12-31T23:00:00-05:00"}, wantErr: "out of range"},
	{name: "datetime_unknown_kwarg", classpath: "datetime", kwargs: map[string]any{"moment": "2026-01-02T03:04:05Z", "momnet": "x"},
		wantErr: `datetime: unknown kwarg "momnet" (want moment)`},

	// timedelta
	{name: "timedelta_string", classpath: "timedelta", kwargs: map[string]any{"delta": "90s"},
		wantKind: "timedelta", want: map[string]any{"delta": "1m30s", "moment": "2026-01-02T03:05:35Z"}},
	{name: "timedelta_airflow", classpath: "airflow.triggers.temporal.TimeDeltaTrigger", kwargs: map[string]any{"delta": "1h30m"},
		wantKind: "timedelta", want: map[string]any{"delta": "1h30m0s", "moment": "2026-01-02T04:34:05Z"}},
	{name: "timedelta_int", classpath: "timedelta", kwargs: map[string]any{"delta": 90},
		wantKind: "timedelta", want: map[string]any{"delta": "1m30s", "moment": "2026-01-02T03:05:35Z"}},
	{name: "timedelta_int64", classpath: "timedelta", kwargs: map[string]any{"delta": int64(90)},
		wantKind: "timedelta", want: map[string]any{"delta": "1m30s", "moment": "2026-01-02T03:05:35Z"}},
	{name: "timedelta_uint64", classpath: "timedelta", kwargs: map[string]any{"delta": uint64(90)},
		wantKind: "timedelta", want: map[string]any{"delta": "1m30s", "moment": "2026-01-02T03:05:35Z"}},
	{name: "timedelta_float64", classpath: "timedelta", kwargs: map[string]any{"delta": 1.5},
		wantKind: "timedelta", want: map[string]any{"delta": "1.5s", "moment": "2026-01-02T03:04:06.5Z"}},
	{name: "timedelta_json_number_int", classpath: "timedelta", kwargs: map[string]any{"delta": json.Number("90")},
		wantKind: "timedelta", want: map[string]any{"delta": "1m30s", "moment": "2026-01-02T03:05:35Z"}},
	{name: "timedelta_json_number_float", classpath: "timedelta", kwargs: map[string]any{"delta": json.Number("0.25")},
		wantKind: "timedelta", want: map[string]any{"delta": "250ms", "moment": "2026-01-02T03:04:05.25Z"}},
	{name: "timedelta_zero", classpath: "timedelta", kwargs: map[string]any{"delta": 0},
		wantKind: "timedelta", want: map[string]any{"delta": "0s", "moment": "2026-01-02T03:04:05Z"}},
	{name: "timedelta_keeps_moment", classpath: "timedelta", kwargs: map[string]any{"delta": "1m30s", "moment": "2026-01-02T03:00:00Z"},
		wantKind: "timedelta", want: map[string]any{"delta": "1m30s", "moment": "2026-01-02T03:00:00Z"}},
	{name: "timedelta_missing", classpath: "timedelta", kwargs: map[string]any{}, wantErr: `timedelta: kwarg "delta" is required`},
	{name: "timedelta_negative", classpath: "timedelta", kwargs: map[string]any{"delta": "-1s"}, wantErr: `timedelta: kwarg "delta" "-1s" is negative`},
	{name: "timedelta_negative_number", classpath: "timedelta", kwargs: map[string]any{"delta": -5}, wantErr: `kwarg "delta" -5 (int) is negative`},
	{name: "timedelta_no_unit", classpath: "timedelta", kwargs: map[string]any{"delta": "90"}, wantErr: `kwarg "delta" "90" is not a duration`},
	{name: "timedelta_huge", classpath: "timedelta", kwargs: map[string]any{"delta": 1e300}, wantErr: "out of range"},
	{name: "timedelta_nan", classpath: "timedelta", kwargs: map[string]any{"delta": math.NaN()}, wantErr: "out of range"},
	{name: "timedelta_bool", classpath: "timedelta", kwargs: map[string]any{"delta": true}, wantErr: "is not a duration"},
	{name: "timedelta_bad_moment", classpath: "timedelta", kwargs: map[string]any{"delta": "1s", "moment": "2026-01-02T03:00:00"}, wantErr: "naive"},

	// http
	{name: "http_defaults", classpath: "http", kwargs: map[string]any{"url": "https://example.com/ready"},
		wantKind: "http", want: map[string]any{"url": "https://example.com/ready", "method": "GET", "status": 200, "interval": "5s"}},
	{name: "http_full", classpath: "airflow.providers.http.triggers.http.HttpTrigger", kwargs: map[string]any{
		"url": "http://127.0.0.1:8080/x?y=1", "method": "post", "status": float64(201), "body_contains": "done",
		"body": `{"a":1}`, "headers": map[string]any{"content-type": "application/json", "X-Token": "t"}, "interval": 0.5},
		wantKind: "http", want: map[string]any{
			"url": "http://127.0.0.1:8080/x?y=1", "method": "POST", "status": 201, "body_contains": "done",
			"body": `{"a":1}`, "headers": map[string]any{"Content-Type": "application/json", "X-Token": "t"}, "interval": "500ms"}},
	{name: "http_headers_string_map", classpath: "taskwire.triggers.HTTP", kwargs: map[string]any{"url": "http://h/", "headers": map[string]string{"accept": "*/*"}, "status": json.Number("204")},
		wantKind: "http", want: map[string]any{"url": "http://h/", "method": "GET", "status": 204, "interval": "5s", "headers": map[string]any{"Accept": "*/*"}}},
	{name: "http_empty_optionals", classpath: "http", kwargs: map[string]any{"url": "http://h/", "body": "", "body_contains": nil, "headers": map[string]any{}},
		wantKind: "http", want: map[string]any{"url": "http://h/", "method": "GET", "status": 200, "interval": "5s"}},
	{name: "http_missing_url", classpath: "http", kwargs: map[string]any{"method": "GET"}, wantErr: `http: kwarg "url" is required`},
	{name: "http_relative_url", classpath: "http", kwargs: map[string]any{"url": "/ready"}, wantErr: `kwarg "url" "/ready" is not an absolute http or https URL`},
	{name: "http_ftp_url", classpath: "http", kwargs: map[string]any{"url": "ftp://h/x"}, wantErr: "not an absolute http or https URL"},
	{name: "http_no_host", classpath: "http", kwargs: map[string]any{"url": "http:///x"}, wantErr: "has no host"},
	{name: "http_bad_url", classpath: "http", kwargs: map[string]any{"url": "http://h/\x7f"}, wantErr: "is not a URL"},
	{name: "http_url_not_string", classpath: "http", kwargs: map[string]any{"url": 5}, wantErr: "is not a string"},
	{name: "http_bad_method", classpath: "http", kwargs: map[string]any{"url": "http://h/", "method": "FETCH"}, wantErr: `kwarg "method" "FETCH" is not one of GET HEAD POST PUT PATCH DELETE`},
	{name: "http_status_low", classpath: "http", kwargs: map[string]any{"url": "http://h/", "status": 99}, wantErr: `kwarg "status" 99 (int) is not an HTTP status`},
	{name: "http_status_high", classpath: "http", kwargs: map[string]any{"url": "http://h/", "status": 600}, wantErr: "is not an HTTP status"},
	{name: "http_status_fraction", classpath: "http", kwargs: map[string]any{"url": "http://h/", "status": 200.5}, wantErr: "is not a whole number"},
	{name: "http_status_string", classpath: "http", kwargs: map[string]any{"url": "http://h/", "status": "200"}, wantErr: "is not a number"},
	{name: "http_headers_not_map", classpath: "http", kwargs: map[string]any{"url": "http://h/", "headers": "a: b"}, wantErr: "is not a map"},
	{name: "http_header_value", classpath: "http", kwargs: map[string]any{"url": "http://h/", "headers": map[string]any{"A": 1}}, wantErr: `header "A" whose value is not a string`},
	{name: "http_header_name", classpath: "http", kwargs: map[string]any{"url": "http://h/", "headers": map[string]any{"A B": "x"}}, wantErr: "invalid header name"},
	{name: "http_header_crlf", classpath: "http", kwargs: map[string]any{"url": "http://h/", "headers": map[string]any{"A": "x\r\nB: y"}}, wantErr: "control characters"},
	{name: "http_header_twice", classpath: "http", kwargs: map[string]any{"url": "http://h/", "headers": map[string]any{"accept": "a", "Accept": "b"}}, wantErr: `names header "Accept" twice`},
	{name: "http_interval_short", classpath: "http", kwargs: map[string]any{"url": "http://h/", "interval": "1ms"}, wantErr: `kwarg "interval" "1ms" is shorter than the minimum 10ms`},
	{name: "http_interval_short_seconds", classpath: "http", kwargs: map[string]any{"url": "http://h/", "interval": 0.001}, wantErr: "shorter than the minimum"},
	{name: "http_head_body_contains", classpath: "http", kwargs: map[string]any{"url": "http://h/", "method": "HEAD", "body_contains": "x"}, wantErr: "HEAD response has no body"},
	{name: "http_unknown_kwarg", classpath: "http", kwargs: map[string]any{"url": "http://h/", "endpoint": "/x"},
		wantErr: `http: unknown kwarg "endpoint" (want body, body_contains, headers, interval, method, rate_key, status, url)`},

	// file
	{name: "file_defaults", classpath: "file", kwargs: map[string]any{"path": "/data/in/ready"},
		wantKind: "file", want: map[string]any{"path": "/data/in/ready", "interval": "1s"}},
	{name: "file_glob", classpath: "airflow.triggers.file.FileTrigger", kwargs: map[string]any{"path": "/data/*/[a-c]?.csv", "interval": int64(2)},
		wantKind: "file", want: map[string]any{"path": "/data/*/[a-c]?.csv", "interval": "2s"}},
	{name: "file_missing", classpath: "file", kwargs: map[string]any{}, wantErr: `file: kwarg "path" is required`},
	{name: "file_empty", classpath: "file", kwargs: map[string]any{"path": ""}, wantErr: `kwarg "path" "" is empty`},
	{name: "file_bad_glob", classpath: "file", kwargs: map[string]any{"path": "/data/["}, wantErr: `file: kwarg "path" "/data/[" is not a valid glob`},
	{name: "file_bad_glob_after_star", classpath: "file", kwargs: map[string]any{"path": "/data/a*["}, wantErr: "is not a valid glob"},
	{name: "file_bad_glob_dir", classpath: "file", kwargs: map[string]any{"path": "/data/[/]x"}, wantErr: "is not a valid glob"},
	{name: "file_interval", classpath: "file", kwargs: map[string]any{"path": "/x", "interval": "soon"}, wantErr: `kwarg "interval" "soon" is not a duration`},

	// event
	{name: "event", classpath: "event", kwargs: map[string]any{"name": "dataset:orders.v1-ready_2"},
		wantKind: "event", want: map[string]any{"name": "dataset:orders.v1-ready_2"}},
	{name: "event_classpath", classpath: "taskwire.triggers.Event", kwargs: map[string]any{"name": "go"},
		wantKind: "event", want: map[string]any{"name": "go"}},
	{name: "event_missing", classpath: "event", kwargs: map[string]any{}, wantErr: `event: kwarg "name" is required`},
	{name: "event_empty", classpath: "event", kwargs: map[string]any{"name": ""}, wantErr: "is not 1-200 characters long"},
	{name: "event_long", classpath: "event", kwargs: map[string]any{"name": strings.Repeat("a", 201)}, wantErr: "is not 1-200 characters long"},
	{name: "event_space", classpath: "event", kwargs: map[string]any{"name": "a b"}, wantErr: `kwarg "name" "a b" has ' ': use only`},
	{name: "event_non_ascii", classpath: "event", kwargs: map[string]any{"name": "café"}, wantErr: "use only"},
	{name: "event_not_string", classpath: "event", kwargs: map[string]any{"name": []any{"a"}}, wantErr: "is not a string"},

	// any kind
	{name: "unknown_classpath", classpath: "airflow.triggers.external_task.WorkflowTrigger", kwargs: map[string]any{},
		wantErr: `unknown classpath "airflow.triggers.external_task.WorkflowTrigger" (want one of datetime, timedelta, http, file, event`},
	{name: "no_classpath", classpath: "", wantErr: "no classpath"},
	{name: "negative_timeout", classpath: "datetime", kwargs: map[string]any{"moment": "2026-01-02T03:04:05Z"}, timeout: -time.Second,
		wantErr: "datetime: timeout -1s is negative"},
}

func TestNormalize(t *testing.T) {
	t.Parallel()
	for _, tc := range normalizeCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := activity.Trigger{ID: "tr1", Classpath: tc.classpath, Kwargs: tc.kwargs, Timeout: activity.Duration(tc.timeout), TIID: "ti1", Try: 2, DeferredAt: now}
			before := fmt.Sprintf("%#v", tc.kwargs) // not DeepEqual: NaN
			got, err := trigger.Normalize(in, now)
			if after := fmt.Sprintf("%#v", tc.kwargs); after != before {
				t.Errorf("Normalize changed the caller's kwargs: %s, was %s", after, before)
			}
			if tc.wantErr != "" {
				if !errors.Is(err, trigger.ErrInvalid) {
					t.Fatalf("err = %v, want one wrapping ErrInvalid", err)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %q, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			want := in
			want.Kind, want.Kwargs = tc.wantKind, tc.want
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got  %#v\nwant %#v", got, want)
			}
			again, err := trigger.Normalize(got, now.Add(time.Hour))
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Fatalf("Normalize of the stored form: %#v, %v; want it unchanged", again, err)
			}
		})
	}
}

// FuzzNormalize checks that Normalize never panics, that its errors wrap
// ErrInvalid, and that its stored form normalizes to itself, later and
// after a trip through JSON (as it is recorded).
func FuzzNormalize(f *testing.F) {
	for _, tc := range normalizeCases {
		b, err := json.Marshal(tc.kwargs)
		if err != nil {
			continue // NaN
		}
		f.Add(tc.classpath, b, false, int64(tc.timeout))
		f.Add(tc.classpath, b, true, int64(tc.timeout))
	}
	f.Fuzz(func(t *testing.T, classpath string, kwargs []byte, useNumber bool, timeout int64) {
		dec := json.NewDecoder(bytes.NewReader(kwargs))
		if useNumber {
			dec.UseNumber()
		}
		var kw map[string]any
		if dec.Decode(&kw) != nil {
			return
		}
		in := activity.Trigger{Classpath: classpath, Kwargs: kw, Timeout: activity.Duration(timeout), DeferredAt: now}
		got, err := trigger.Normalize(in, now)
		if err != nil {
			if !errors.Is(err, trigger.ErrInvalid) {
				t.Fatalf("err = %v, want one wrapping ErrInvalid", err)
			}
			return
		}
		again, err := trigger.Normalize(got, now.Add(time.Hour))
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("Normalize of %#v = %#v, %v; want it unchanged", got, again, err)
		}
		b, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		var rec activity.Trigger
		if err := json.Unmarshal(b, &rec); err != nil {
			t.Fatal(err)
		}
		again, err = trigger.Normalize(rec, now.Add(time.Hour))
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("Normalize of %s = %#v, %v; want %#v", b, again, err, got)
		}
	})
}

func ExampleNormalize() {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	t, err := trigger.Normalize(activity.Trigger{
		Classpath: "airflow.triggers.temporal.TimeDeltaTrigger",
		Kwargs:    map[string]any{"delta": 90},
	}, now)
	fmt.Println(t.Kind, t.Kwargs, err)

	_, err = trigger.Normalize(activity.Trigger{
		Classpath: "taskwire.triggers.DateTime",
		Kwargs:    map[string]any{"moment": "2026-01-02T03:04:05"},
	}, now)
	fmt.Println(err)
	// Output:
	// timedelta map[delta:1m30s moment:2026-01-02T03:05:35Z] <nil>
	// invalid trigger: datetime: kwarg "moment" "2026-01-02T03:04:05" has no time zone (a naive time): give an offset or Z
}

func TestNormalizeAirflow(t *testing.T) {
	now := time.Now()
	got, err := trigger.Normalize(activity.Trigger{Classpath: "taskwire.triggers.Airflow", Kwargs: map[string]any{
		"classpath": "dags.triggers.FileAppears", "kwargs": map[string]any{"path": "/tmp/x"}}}, now)
	if err != nil || got.Kind != trigger.KindAirflow || got.Kwargs["classpath"] != "dags.triggers.FileAppears" {
		t.Fatalf("got %+v, %v", got, err)
	}
	again, err := trigger.Normalize(got, now)
	if err != nil || !reflect.DeepEqual(again, got) {
		t.Errorf("normalizing again: %+v, %v", again, err)
	}
	// A trigger class's rate_key kwarg is the trigger's rate_key (the
	// default key of the Python runtime's rate_limit()).
	got, err = trigger.Normalize(activity.Trigger{Classpath: "taskwire.triggers.Airflow", Kwargs: map[string]any{
		"classpath": "dags.triggers.Poll", "kwargs": map[string]any{"url": "http://x", "rate_key": "api.example.com"}}}, now)
	if err != nil || got.Kwargs["rate_key"] != "api.example.com" {
		t.Fatalf("rate_key kwarg: %+v, %v", got, err)
	}
	if again, err := trigger.Normalize(got, now); err != nil || !reflect.DeepEqual(again, got) {
		t.Errorf("normalizing again: %+v, %v", again, err)
	}
	for _, kw := range []map[string]any{
		{}, {"classpath": 3}, {"classpath": "NoDots"}, {"classpath": "a..b"}, {"classpath": "a.1b"},
		{"classpath": "a.B", "kwargs": "x"}, {"classpath": "a.B", "other": 1},
		{"classpath": "a.B", "kwargs": map[string]any{"rate_key": "a b"}}, {"classpath": "a.B", "kwargs": map[string]any{"rate_key": 3}},
		{"classpath": "a.B", "rate_key": ""},
	} {
		if _, err := trigger.Normalize(activity.Trigger{Classpath: "airflow", Kwargs: kw}, now); !errors.Is(err, trigger.ErrInvalid) {
			t.Errorf("%v: err %v, want trigger.ErrInvalid", kw, err)
		}
	}
}
