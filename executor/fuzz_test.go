package executor

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/taskwire/taskwire/execution"
)

// fuzzBody fuzzes the decoding and checking of one Execution API body as
// its handler does it, before any state is touched. A body is either
// refused with a 4xx (never a 500: a bad body is the caller's fault), or
// accepted, and then it survives being encoded and decoded again, as it
// will be when stored.
func fuzzBody[T any](f *testing.F, seeds []string, check func(*T) error) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v T
		err := decodeJSON(data, &v)
		if err == nil && check != nil {
			err = check(&v)
		}
		if err != nil {
			if status, _ := statusOf(err); status != http.StatusBadRequest {
				t.Fatalf("body %q refused with %d (%v), want 400", data, status, err)
			}
			return
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("accepted body %q does not encode: %v", data, err)
		}
		var again T
		if err := decodeJSON(b, &again); err != nil {
			t.Fatalf("accepted body %q re-encoded as %s is refused: %v", data, b, err)
		}
		if check != nil {
			if err := check(&again); err != nil {
				t.Fatalf("accepted body %q re-encoded as %s fails its check: %v", data, b, err)
			}
		}
	})
}

var commonSeeds = []string{"", "{", "[]", "null", `{"x":1}`, `{} {}`, "\xff", `"s"`}

func FuzzRunBody(f *testing.F) {
	fuzzBody(f, append(commonSeeds,
		`{"hostname":"h","pid":1,"worker_id":"w","activity_id":"a","start_date":"2026-11-23T00:00:00Z"}`,
		`{"hostname":"","pid":-1,"worker_id":"w"}`,
		`{"hostname":"h","pid":1e99,"worker_id":"w"}`,
		`{"hostname":"h","worker_id":"w","start_date":"not a date"}`,
	), checkRun)
}

func FuzzStateBody(f *testing.F) {
	fuzzBody(f, append(commonSeeds,
		`{"state":"success","end_date":"2026-11-23T00:00:00Z"}`,
		`{"state":"up_for_retry","reason":"exit code 1"}`,
		`{"state":"queued"}`,
		`{"state":"deferred","trigger":{"classpath":"timedelta","kwargs":{"delta":"1s"}},"next_method":"after","next_kwargs":{"n":1}}`,
		`{"state":"deferred","trigger":{"classpath":""},"next_method":"after"}`,
		`{"state":"deferred","trigger":{"classpath":"event","kwargs":{"name":"go"},"timeout":"2s"},"next_method":"m","next_kwargs":{"a":[1,{"b":null}]}}`,
	), checkState)
}

func FuzzHeartbeatBody(f *testing.F) {
	fuzzBody[execution.HeartbeatRequest](f, append(commonSeeds,
		`{"hostname":"h","pid":7,"worker_id":"w"}`,
		`{"hostname":1}`,
	), nil)
}

func FuzzVariableBody(f *testing.F) {
	fuzzBody[execution.VariableBody](f, append(commonSeeds,
		`{"value":"x"}`,
		`{"key":"k","value":"x","description":"d"}`,
		`{"value":1}`,
	), nil)
}

func FuzzXComBody(f *testing.F) {
	fuzzBody(f, append(commonSeeds,
		`{"value":1}`,
		`{"key":"k","value":{"a":[1,2,{"b":"c"}],"d":1.5e300}}`,
		`{"value":"\ud800"}`,
	), func(b *execution.XComBody) error {
		_, err := jsonValue(b.Value)
		return err
	})
}

func FuzzPoolBody(f *testing.F) {
	fuzzBody(f, append(commonSeeds,
		`{"slots":5}`, `{"slots":-1,"include_deferred":true,"description":"d"}`, `{"slots":-2}`,
		`{"slots":1e99}`, `{"slots":null}`, `{"slots":3,"description":null}`,
	), func(b *PoolBody) error { return b.validate() })
}

func FuzzQueueBody(f *testing.F) {
	fuzzBody(f, append(commonSeeds, `{"max_running":10}`, `{"max_running":0}`, `{"max_running":-1}`, `{"max_running":1.5}`),
		func(b *QueueBody) error { return b.validate() })
}

func FuzzRateLimitBody(f *testing.F) {
	fuzzBody(f, append(commonSeeds, `{"rps":20,"concurrent":5}`, `{"rps":0}`, `{"rps":-1}`, `{"rps":1e308}`, `{"rps":0.5}`),
		func(b *RateLimitBody) error { return b.validate() })
}
