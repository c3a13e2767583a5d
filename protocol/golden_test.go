package protocol

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden frames in testdata/")

// golden is one message as a golden frame holds it.
type golden struct {
	name     string
	id       int
	msg      Message
	errResp  *ErrorResponse
	response bool // worker → task: [id, msg, error]
}

func intPtr(n int) *int { return &n }

// goldens returns one realistic message of every type. Numbers inside any
// values are int64 or float64, as decoding yields them.
func goldens() []golden {
	return []golden{
		{name: TypeStartupDetails, id: 0, response: true, msg: StartupDetails{
			TI: TaskInstance{ID: "0195b3c2-7a1e-7c4d-9f1a-3b2c1d0e9f8a", DagID: "etl", TaskID: "transform",
				RunID: "scheduled__2026-11-22T00:00:00+00:00", MapIndex: -1, TryNumber: 2},
			Context: RunContext{MaxTries: 3, Queue: "go", Entrypoint: "transform", Params: map[string]any{
				"day": "2026-11-22", "limit": int64(500), "ratio": 0.25, "dry_run": false,
				"tables": []any{"orders", "customers"}, "target": map[string]any{"schema": "analytics", "partitions": int64(8)},
			}},
			NextMethod: "resume_after_wait",
			NextKwargs: map[string]any{"event": map[string]any{"status": "done", "rows": int64(1204)}, "attempts": []any{int64(1), int64(2)}},
			StartDate:  "2026-11-22T08:15:30.123456Z",
		}},
		{name: TypeConnectionResult, id: 3, response: true, msg: ConnectionResult{
			ConnID: "warehouse", ConnType: "postgres", Host: "db.internal", Schema: "analytics",
			Login: "etl_user", Password: "s3cret!", Port: 5432,
			Extra: map[string]any{"sslmode": "require", "connect_timeout": int64(10), "options": []any{"-c", "statement_timeout=60000"}},
		}},
		{name: TypeVariableResult, id: 4, response: true, msg: VariableResult{Key: "greeting", Value: "hello taskwire"}},
		{name: TypeXComResult, id: 5, response: true, msg: XComResult{Key: "return_value", Value: map[string]any{
			"rows": int64(1204), "mean": 17.5, "ok": true, "missing": nil,
			"files": []any{"s3://bucket/a.parquet", "s3://bucket/b.parquet"}, "stats": map[string]any{"min": int64(-3), "max": int64(99)},
		}}},
		{name: TypeOKResponse, id: 6, response: true, msg: OKResponse{}},
		{name: TypeErrorResponse, id: 7, response: true, errResp: &ErrorResponse{Error: "not_found",
			Detail: map[string]any{"message": "variable \"greeting\" not found", "key": "greeting", "status": int64(404)}}},
		{name: TypeGetConnection, id: 3, msg: GetConnection{ConnID: "warehouse"}},
		{name: TypeGetVariable, id: 4, msg: GetVariable{Key: "greeting"}},
		{name: TypePutVariable, id: 8, msg: PutVariable{Key: "last_run", Value: "2026-11-22", Description: "day the ETL last ran"}},
		{name: TypeGetXCom, id: 5, msg: GetXCom{Key: "return_value", DagID: "etl", RunID: "scheduled__2026-11-22T00:00:00+00:00", TaskID: "extract", MapIndex: intPtr(2)}},
		{name: TypeSetXCom, id: 9, msg: SetXCom{Key: "summary", DagID: "etl", RunID: "scheduled__2026-11-22T00:00:00+00:00", TaskID: "transform", MapIndex: intPtr(-1),
			Value: map[string]any{"rows": int64(1204), "ratio": 0.25, "tags": []any{"daily", map[string]any{"k": "v"}}, "none": nil, "done": true}}},
		{name: TypeDeleteXCom, id: 10, msg: DeleteXCom{Key: "scratch", DagID: "etl", RunID: "manual__2026-11-22T09:00:00+00:00", TaskID: "transform", MapIndex: intPtr(0)}},
		{name: TypeDeferTask, id: 11, msg: DeferTask{Classpath: "taskwire.triggers.TimeDelta",
			TriggerKwargs: map[string]any{"delta": "90s", "poll": map[string]any{"interval": "5s", "jitter": 0.1}}, TriggerTimeout: "1h",
			NextMethod: "resume_after_wait", NextKwargs: map[string]any{"attempt": int64(1), "ids": []any{int64(7), int64(8)}}}},
		{name: TypeRetryTask, id: 12, msg: RetryTask{EndDate: "2026-11-22T08:16:02.5Z", Reason: "upstream API returned 503"}},
		{name: TypeSucceedTask, id: 12, msg: SucceedTask{EndDate: "2026-11-22T08:16:02.5Z"}},
		{name: TypeTaskState, id: 12, msg: TaskState{State: "skipped", EndDate: "2026-11-22T08:16:02.5Z", Reason: "no new partitions"}},
		{name: TypeMaskSecret, id: 2, msg: MaskSecret{Value: "s3cret!", Name: "warehouse_password"}},
	}
}

func goldenPath(c Codec, name string) string {
	if c == CodecJSON {
		return filepath.Join("testdata", "json", name+".json.bin")
	}
	return filepath.Join("testdata", "msgpack", name+".bin")
}

var codecs = []Codec{CodecMsgpack, CodecJSON}

func (g golden) encode(c Codec) ([]byte, error) {
	if g.response {
		return c.EncodeResponse(g.id, g.msg, g.errResp)
	}
	return c.EncodeRequest(g.id, g.msg)
}

func frame(body []byte) []byte {
	var buf bytes.Buffer
	if err := WriteFrame(&buf, body); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// withType returns msg with its Type field set, as decoding yields it.
func withType(t *testing.T, msg Message) Message {
	t.Helper()
	if msg == nil {
		return nil
	}
	m, err := typed(msg)
	if err != nil {
		t.Fatal(err)
	}
	return m.(Message)
}

func TestGoldenFramesCoverEveryType(t *testing.T) {
	seen := map[string]bool{}
	for _, g := range goldens() {
		seen[g.name] = true
	}
	for name := range messageTypes {
		if !seen[name] {
			t.Errorf("no golden frame for %s", name)
		}
	}
}

func TestGoldenFrames(t *testing.T) {
	for _, c := range codecs {
		for _, g := range goldens() {
			t.Run(c.String()+"/"+g.name, func(t *testing.T) {
				body, err := g.encode(c)
				if err != nil {
					t.Fatal(err)
				}
				got := frame(body)
				path := goldenPath(c, g.name)
				if *update {
					if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(path, got, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run go test ./protocol -update)", err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("encoding differs from %s (run go test ./protocol -update if intended)\ngot  %q\nwant %q", path, got, want)
				}

				// Decode the golden frame and encode it again: same bytes.
				b, err := ReadFrame(bytes.NewReader(want), 0)
				if err != nil {
					t.Fatal(err)
				}
				var again []byte
				if g.response {
					resp, err := c.DecodeResponse(b)
					if err != nil {
						t.Fatal(err)
					}
					if resp.ID != g.id || !reflect.DeepEqual(resp.Msg, withType(t, g.msg)) {
						t.Errorf("decoded %d %#v\nwant    %d %#v", resp.ID, resp.Msg, g.id, withType(t, g.msg))
					}
					if g.errResp != nil {
						want := *g.errResp
						want.Type = TypeErrorResponse
						if resp.Err == nil || !reflect.DeepEqual(*resp.Err, want) {
							t.Errorf("decoded error %#v, want %#v", resp.Err, want)
						}
					} else if resp.Err != nil {
						t.Errorf("decoded error %#v, want nil", resp.Err)
					}
					again, err = c.EncodeResponse(resp.ID, resp.Msg, resp.Err)
					if err != nil {
						t.Fatal(err)
					}
				} else {
					req, err := c.DecodeRequest(b)
					if err != nil {
						t.Fatal(err)
					}
					if req.ID != g.id || !reflect.DeepEqual(req.Msg, withType(t, g.msg)) {
						t.Errorf("decoded %d %#v\nwant    %d %#v", req.ID, req.Msg, g.id, withType(t, g.msg))
					}
					again, err = c.EncodeRequest(req.ID, req.Msg)
					if err != nil {
						t.Fatal(err)
					}
				}
				if !bytes.Equal(frame(again), want) {
					t.Errorf("re-encoding the decoded frame differs\ngot  %q\nwant %q", frame(again), want)
				}
			})
		}
	}
}
