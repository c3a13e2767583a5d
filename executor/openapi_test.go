package executor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/dag"
	"github.com/taskwire/taskwire/execution"
	"github.com/taskwire/taskwire/queue"
)

// apiOp says, for one operation of executor/openapi.yaml, the Go types of
// its JSON bodies. Adding a route: add its path to openapi.yaml and an
// entry here; TestOpenAPIRoutes and TestOpenAPIBodies say what is missing.
type apiOp struct {
	// req is the Go type the handler decodes the request body into (nil:
	// no body, or any JSON value), check the handler's decoding and checks
	// of it.
	req   reflect.Type
	check func([]byte) error
	// resp is the Go type of each 2xx JSON answer by status. Error answers
	// (4xx, 5xx) are execution.ErrorBody, checked for every operation,
	// unless resp names another type for the status.
	resp map[string]reflect.Type
}

func typeOf[T any]() reflect.Type { return reflect.TypeFor[T]() }

// body is the handlers' decoding (decodeJSON) followed by check.
func body[T any](check func(*T) error) func([]byte) error {
	return func(b []byte) error {
		var v T
		if err := decodeJSON(b, &v); err != nil {
			return err
		}
		if check != nil {
			return check(&v)
		}
		return nil
	}
}

// The answers the handlers write as maps or by hand. A field tagged
// oa:"nonnull" is never null (the handler makes it non-nil).
type (
	taskInstanceList struct {
		TaskInstances []activity.TaskInstance `json:"task_instances" oa:"nonnull"`
		Total         int                     `json:"total"`
		NextCursor    string                  `json:"next_cursor,omitempty"`
	}
	variableList struct {
		Variables []activity.Variable `json:"variables" oa:"nonnull"`
	}
	connectionList struct {
		Connections []activity.Connection `json:"connections" oa:"nonnull"`
	}
	workerList struct {
		Workers []activity.WorkerInfo `json:"workers" oa:"nonnull"`
	}
	triggererList struct {
		Triggerers []activity.TriggererInfo `json:"triggerers" oa:"nonnull"`
	}
	rateLimitList struct {
		Limits []activity.RateLimit `json:"limits" oa:"nonnull"`
	}
	poolList struct {
		Pools []activity.Pool `json:"pools" oa:"nonnull"`
	}
	queueList struct {
		Queues []activity.QueueInfo `json:"queues" oa:"nonnull"`
	}
	dagList struct {
		Dags  []dag.Summary `json:"dags" oa:"nonnull"`
		Total int           `json:"total"`
	}
	runList struct {
		DagRuns []dag.RunView `json:"dag_runs" oa:"nonnull"`
		Total   int           `json:"total"`
	}
	// xcomAnswer is what GET xcoms/… writes (handleXCom, handleGetXCom).
	xcomAnswer struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	}
)

// connPathID is the path id the connection body checks run with.
const connPathID = "x"

// servedBeside are documented operations that executor serve (cli/serve.go)
// registers beside the executor's handler, on the same listener.
var servedBeside = []string{"GET /readyz"}

var apiOps = map[string]apiOp{
	"GET /readyz":              {},
	"GET /api/v1/openapi.json": {},
	"GET /execution/health":    {resp: map[string]reflect.Type{"200": typeOf[healthBody]()}},
	// DAGs and runs. PUT's body is a YAML (or JSON) document checked by
	// dag.Parse (described as application/yaml: YAML's scalars are not
	// JSON's types, so the JSON probes do not apply).
	"GET /api/v1/dags":          {resp: map[string]reflect.Type{"200": typeOf[dagList]()}},
	"GET /api/v1/dags/{dag_id}": {resp: map[string]reflect.Type{"200": typeOf[dag.Record]()}},
	"PUT /api/v1/dags/{dag_id}": {resp: map[string]reflect.Type{"200": typeOf[dag.Record](), "201": typeOf[dag.Record](),
		"400": typeOf[dag.ProblemsBody]()}},
	"DELETE /api/v1/dags/{dag_id}":       {},
	"PATCH /api/v1/dags/{dag_id}":        {req: typeOf[patchDagBody](), check: body(checkPatchDag), resp: map[string]reflect.Type{"200": typeOf[dag.Record]()}},
	"POST /api/v1/dags/{dag_id}/pause":   {resp: map[string]reflect.Type{"200": typeOf[dag.Record]()}},
	"POST /api/v1/dags/{dag_id}/unpause": {resp: map[string]reflect.Type{"200": typeOf[dag.Record]()}},
	"POST /api/v1/dags/{dag_id}/runs": {
		req: typeOf[dag.TriggerRequest](), check: body(checkTrigger),
		resp: map[string]reflect.Type{"200": typeOf[dag.RunView](), "201": typeOf[dag.RunView]()},
	},
	"GET /api/v1/dags/{dag_id}/runs":                {resp: map[string]reflect.Type{"200": typeOf[runList]()}},
	"GET /api/v1/dags/{dag_id}/runs/{run_id}":       {resp: map[string]reflect.Type{"200": typeOf[dag.RunView]()}},
	"GET /api/v1/dags/{dag_id}/runs/{run_id}/watch": {},
	"POST /api/v1/dags/{dag_id}/runs/{run_id}/clear": {
		req: typeOf[dag.ClearRequest](), check: body[dag.ClearRequest](nil),
		resp: map[string]reflect.Type{"200": typeOf[dag.RunView]()},
	},
	"POST /api/v1/activities": {
		req: typeOf[activity.TaskSpec](),
		check: body(func(s *activity.TaskSpec) error {
			d := s.WithDefaults(time.Now())
			return d.Validate()
		}),
		resp: map[string]reflect.Type{"200": typeOf[activity.TaskInstance](), "201": typeOf[activity.TaskInstance]()},
	},
	"GET /api/v1/pools":        {resp: map[string]reflect.Type{"200": typeOf[poolList]()}},
	"GET /api/v1/pools/{name}": {resp: map[string]reflect.Type{"200": typeOf[activity.Pool]()}},
	"PUT /api/v1/pools/{name}": {
		req: typeOf[PoolBody](), check: body(func(b *PoolBody) error { return b.validate() }),
		resp: map[string]reflect.Type{"200": typeOf[activity.Pool]()},
	},
	"DELETE /api/v1/pools/{name}": {},
	"GET /api/v1/limits":          {resp: map[string]reflect.Type{"200": typeOf[rateLimitList]()}},
	"PUT /api/v1/limits/{key}": {
		req: typeOf[RateLimitBody](), check: body(func(b *RateLimitBody) error { return b.validate() }),
		resp: map[string]reflect.Type{"200": typeOf[activity.RateLimit]()},
	},
	"DELETE /api/v1/limits/{key}": {},
	"PUT /api/v1/queues/{name}": {
		req: typeOf[QueueBody](), check: body(func(b *QueueBody) error { return b.validate() }),
		resp: map[string]reflect.Type{"200": typeOf[activity.QueueInfo]()},
	},
	"GET /api/v1/task-instances":              {resp: map[string]reflect.Type{"200": typeOf[taskInstanceList]()}},
	"GET /api/v1/task-instances/{id}":         {resp: map[string]reflect.Type{"200": typeOf[activity.TaskInstance]()}},
	"POST /api/v1/task-instances/{id}/cancel": {resp: map[string]reflect.Type{"200": typeOf[activity.TaskInstance]()}},
	"POST /api/v1/task-instances/{id}/retry":  {resp: map[string]reflect.Type{"202": typeOf[activity.TaskInstance]()}},
	"GET /api/v1/task-instances/{id}/logs":    {},
	"GET /api/v1/task-instances/{id}/watch":   {},
	"GET /api/v1/variables":                   {resp: map[string]reflect.Type{"200": typeOf[variableList]()}},
	"GET /api/v1/variables/{key}":             {resp: map[string]reflect.Type{"200": typeOf[activity.Variable]()}},
	"PUT /api/v1/variables/{key}": {
		req: typeOf[execution.VariableBody](), check: body[execution.VariableBody](nil),
		resp: map[string]reflect.Type{"200": typeOf[activity.Variable]()},
	},
	"DELETE /api/v1/variables/{key}": {},
	"GET /api/v1/connections":        {resp: map[string]reflect.Type{"200": typeOf[connectionList]()}},
	"GET /api/v1/connections/{id}":   {resp: map[string]reflect.Type{"200": typeOf[activity.Connection]()}},
	"PUT /api/v1/connections/{id}": {
		req:   typeOf[activity.Connection](),
		check: body(func(c *activity.Connection) error { return checkConnection(connPathID, c) }),
		resp:  map[string]reflect.Type{"200": typeOf[activity.Connection]()},
	},
	"DELETE /api/v1/connections/{id}":                           {},
	"POST /api/v1/logs/purge":                                   {req: typeOf[PurgeLogsRequest](), check: body[PurgeLogsRequest](nil), resp: map[string]reflect.Type{"200": typeOf[PurgeLogsResponse]()}},
	"POST /api/v1/events/{name}":                                {resp: map[string]reflect.Type{"202": typeOf[activity.ExternalEvent]()}},
	"GET /api/v1/xcoms/{dag_id}/{run_id}/{task_id}/{key}":       {resp: map[string]reflect.Type{"200": typeOf[xcomAnswer]()}},
	"GET /api/v1/workers":                                       {resp: map[string]reflect.Type{"200": typeOf[workerList]()}},
	"POST /api/v1/workers/{id}/drain":                           {resp: map[string]reflect.Type{"202": typeOf[activity.WorkerInfo]()}},
	"GET /api/v1/triggerers":                                    {resp: map[string]reflect.Type{"200": typeOf[triggererList]()}},
	"GET /api/v1/queues":                                        {resp: map[string]reflect.Type{"200": typeOf[queueList]()}},
	"GET /execution/task-instances/{id}/state":                  {resp: map[string]reflect.Type{"200": typeOf[execution.TaskStateResponse]()}},
	"GET /execution/connections/{id}":                           {resp: map[string]reflect.Type{"200": typeOf[activity.Connection]()}},
	"GET /execution/variables/{key}":                            {resp: map[string]reflect.Type{"200": typeOf[activity.Variable]()}},
	"DELETE /execution/variables/{key}":                         {},
	"GET /execution/xcoms/{dag_id}/{run_id}/{task_id}/{key}":    {resp: map[string]reflect.Type{"200": typeOf[xcomAnswer]()}},
	"DELETE /execution/xcoms/{dag_id}/{run_id}/{task_id}/{key}": {},
	"PATCH /execution/task-instances/{id}/run": {
		req: typeOf[execution.RunRequest](), check: body(checkRun),
		resp: map[string]reflect.Type{"200": typeOf[execution.RunResponse]()},
	},
	"PATCH /execution/task-instances/{id}/state":           {req: typeOf[execution.StateRequest](), check: body(checkState)},
	"PATCH /execution/task-instances/{id}/skip-downstream": {req: typeOf[execution.SkipDownstreamRequest](), check: body(checkSkipDownstream)},
	"PUT /execution/task-instances/{id}/heartbeat": {
		req: typeOf[execution.HeartbeatRequest](), check: body[execution.HeartbeatRequest](nil),
	},
	"PUT /execution/variables/{key}": {
		req: typeOf[execution.VariableBody](), check: body[execution.VariableBody](nil),
		resp: map[string]reflect.Type{"200": typeOf[activity.Variable]()},
	},
	"POST /execution/xcoms/{dag_id}/{run_id}/{task_id}/{key}": {
		req: typeOf[execution.XComBody](),
		check: body(func(x *execution.XComBody) error {
			_, err := jsonValue(x.Value)
			return err
		}),
	},
}

// openapiDoc returns the served document, decoded.
func openapiDoc(t *testing.T) map[string]any {
	t.Helper()
	raw, err := OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	return doc.(map[string]any)
}

var httpMethods = []string{"get", "put", "post", "delete", "patch", "head", "options", "trace"}

// operations returns the document's operations as "METHOD path".
func operations(doc map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	for path, item := range doc["paths"].(map[string]any) {
		for m, op := range item.(map[string]any) {
			if slices.Contains(httpMethods, m) {
				out[strings.ToUpper(m)+" "+path] = op.(map[string]any)
			}
		}
	}
	return out
}

// TestOpenAPIRoutes checks that every API route the executor registers is
// in the document, and every operation of the document is registered.
func TestOpenAPIRoutes(t *testing.T) {
	f := newFixture(t, queue.Config{}, Config{})
	ops := operations(openapiDoc(t))
	registered := map[string]bool{}
	for _, p := range f.ex.routes().patterns {
		method, path, hasMethod := strings.Cut(p, " ")
		if !hasMethod {
			path = p
		}
		if !strings.HasPrefix(path, "/api/") && !strings.HasPrefix(path, "/execution/") {
			continue // the dashboard, /healthz
		}
		if slices.Contains(apiFallbacks, p) {
			continue // 404 or 405 for what no route takes; no operation
		}
		if !hasMethod {
			t.Errorf("route %q has no method: register each method (e.g. \"GET %s\") and document it", p, p)
			continue
		}
		key := method + " " + strings.ReplaceAll(path, "...}", "}")
		registered[key] = true
		if _, ok := ops[key]; !ok {
			t.Errorf("route %q is registered but not in executor/openapi.yaml: add paths: %q: %s: with its parameters, body and answers",
				p, path, strings.ToLower(method))
		}
	}
	for _, key := range servedBeside {
		registered[key] = true
	}
	for key := range ops {
		if !registered[key] {
			t.Errorf("executor/openapi.yaml documents %s, but the executor registers no such route", key)
		}
	}
	// The served document is this one.
	resp, err := http.Get(f.srv.URL + "/api/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var served map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&served); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/openapi.json: %d, %v", resp.StatusCode, err)
	}
	if served["openapi"] != "3.1.0" || len(served["paths"].(map[string]any)) == 0 {
		t.Errorf("served document: openapi %v, %d paths", served["openapi"], len(served["paths"].(map[string]any)))
	}
}

// TestOpenAPIServedWithoutToken checks that the document needs no operator
// token while the rest of /api/ does.
func TestOpenAPIServedWithoutToken(t *testing.T) {
	f := newFixture(t, queue.Config{}, Config{OperatorToken: "sekret-operator-token"})
	for path, want := range map[string]int{"/api/v1/openapi.json": 200, "/api/v1/task-instances": 401} {
		resp, err := http.Get(f.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s without a token: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

// schemas resolves $refs of the document and compiles schemas at its
// JSON pointers.
type schemas struct {
	doc map[string]any
	c   *jsonschema.Compiler
}

func newSchemas(t *testing.T, doc map[string]any) *schemas {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("openapi.json", doc); err != nil {
		t.Fatal(err)
	}
	return &schemas{doc: doc, c: c}
}

// resolve follows $ref (to this document) until a schema without one.
func (s *schemas) resolve(sch map[string]any) (map[string]any, string) {
	ptr := ""
	for i := 0; i < 20; i++ {
		ref, ok := sch["$ref"].(string)
		if !ok {
			return sch, ptr
		}
		ptr = strings.TrimPrefix(ref, "#")
		var cur any = s.doc
		for _, part := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
			cur = cur.(map[string]any)[part]
		}
		sch = cur.(map[string]any)
	}
	panic("$ref loop")
}

// compile compiles the schema at ptr (a JSON pointer into the document).
func (s *schemas) compile(t *testing.T, ptr string) *jsonschema.Schema {
	t.Helper()
	sch, err := s.c.Compile("openapi.json#" + ptr)
	if err != nil {
		t.Fatalf("compile %s: %v", ptr, err)
	}
	return sch
}

func jsonPointer(parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		b.WriteByte('/')
		b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(p))
	}
	return b.String()
}

// TestOpenAPIBodies compares each operation's bodies with the Go types the
// handlers decode and answer: the properties with the JSON fields (both
// ways, recursively, with their JSON types), the unknown-field policy
// (additionalProperties false where the server refuses unknown fields),
// the required answer fields with those Go always writes, and, for each
// request body, that the schema and the handler's decoding and checks
// agree on the example, on the example without each of its fields, with
// an unknown field, and with each field of the wrong type.
func TestOpenAPIBodies(t *testing.T) {
	doc := openapiDoc(t)
	s := newSchemas(t, doc)
	ops := operations(doc)
	errorBody := typeOf[execution.ErrorBody]()
	for key := range apiOps {
		if _, ok := ops[key]; !ok {
			t.Errorf("apiOps (openapi_test.go) has %s, which executor/openapi.yaml does not document", key)
		}
	}
	keys := make([]string, 0, len(ops))
	for k := range ops {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		op := ops[key]
		want, ok := apiOps[key]
		if !ok {
			t.Errorf("%s: no entry in apiOps (executor/openapi_test.go): add the Go types of its request body and answers", key)
			continue
		}
		method, path, _ := strings.Cut(key, " ")
		opPtr := jsonPointer("paths", path, strings.ToLower(method))
		// The request body.
		var reqSchema map[string]any
		if rb, ok := op["requestBody"].(map[string]any); ok {
			rb, _ = s.resolve(rb)
			if mt, ok := rb["content"].(map[string]any)["application/json"].(map[string]any); ok {
				reqSchema, _ = mt["schema"].(map[string]any)
				rs, _ := s.resolve(reqSchema)
				if want.req == nil && len(rs) > 0 {
					t.Errorf("%s: the document has a request body, but apiOps has no Go type for it", key)
				}
				if want.req != nil {
					cmp := &schemaCmp{t: t, s: s, request: true}
					cmp.compare(key+" request", reqSchema, want.req, false)
					example, ok := mt["example"]
					if !ok {
						t.Errorf("%s: the request body needs an example (the test probes the handler with it)", key)
					} else {
						probeRequest(t, key, s.compile(t, opPtr+jsonPointer("requestBody", "content", "application/json", "schema")), example, want.check)
					}
				}
			}
		} else if want.req != nil {
			t.Errorf("%s: the handler decodes a %s body, which the document does not describe", key, want.req)
		}
		// The answers.
		responses, _ := op["responses"].(map[string]any)
		for status, r := range responses {
			r, _ := s.resolve(r.(map[string]any))
			content, _ := r["content"].(map[string]any)
			mt, ok := content["application/json"].(map[string]any)
			if !ok {
				if status[0] == '2' && want.resp[status] != nil {
					t.Errorf("%s %s: apiOps has a %s answer, the document no JSON one", key, status, want.resp[status])
				}
				continue
			}
			sch, _ := mt["schema"].(map[string]any)
			typ := want.resp[status]
			if (status[0] == '4' || status[0] == '5') && typ == nil {
				typ = errorBody
			}
			if typ == nil {
				if key == "GET /api/v1/openapi.json" {
					continue
				}
				t.Errorf("%s %s: a JSON answer without a Go type in apiOps", key, status)
				continue
			}
			cmp := &schemaCmp{t: t, s: s}
			cmp.compare(key+" "+status, sch, typ, false)
		}
		for status := range want.resp {
			if _, ok := responses[status]; !ok {
				t.Errorf("%s: apiOps has a %s answer, the document none", key, status)
			}
		}
	}
}

// probeRequest checks that sch and check (the handler's decoding and
// checks) agree on the example and variants of it.
func probeRequest(t *testing.T, key string, sch *jsonschema.Schema, example any, check func([]byte) error) {
	t.Helper()
	agree := func(what string, v any) {
		t.Helper()
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		schemaErr := sch.Validate(inst)
		serverErr := check(b)
		switch {
		case schemaErr == nil && serverErr != nil:
			t.Errorf("%s: %s %s: the document allows it, the server refuses it: %v", key, what, b, serverErr)
		case schemaErr != nil && serverErr == nil:
			t.Errorf("%s: %s %s: the server accepts it, the document does not: %v", key, what, b, schemaErr)
		}
	}
	agree("the example", example)
	obj, ok := example.(map[string]any)
	if !ok {
		return
	}
	agree("an unknown field", with(obj, "zz_unknown_field", 1))
	agree("an array body", []any{obj})
	agree("a null body", nil)
	for k := range obj {
		without := with(obj, "", nil)
		delete(without, k)
		agree("without "+k, without)
	}
	for _, k := range schemaProperties(sch) {
		for _, v := range []any{nil, true, 12345, "x", "", []any{}, map[string]any{}} {
			agree(fmt.Sprintf("%s=%v", k, v), with(obj, k, v))
		}
	}
}

// schemaProperties lists the names of sch's properties.
func schemaProperties(sch *jsonschema.Schema) []string {
	for sch.Ref != nil {
		sch = sch.Ref
	}
	var out []string
	for k := range sch.Properties {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// with returns a copy of m with k set to v (no key when k is "").
func with(m map[string]any, k string, v any) map[string]any {
	out := make(map[string]any, len(m)+1)
	for mk, mv := range m {
		out[mk] = mv
	}
	if k != "" {
		out[k] = v
	}
	return out
}

// schemaCmp compares schemas with Go types.
type schemaCmp struct {
	t       *testing.T
	s       *schemas
	request bool
}

var (
	timeType     = reflect.TypeFor[time.Time]()
	durationType = reflect.TypeFor[activity.Duration]()
	skipTaskType = reflect.TypeFor[execution.SkipTask]()
	stateType    = reflect.TypeFor[activity.State]()
	runTIType    = reflect.TypeFor[dag.RunTI]()
)

func schemaTypes(sch map[string]any) []string {
	switch v := sch["type"].(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, x := range v {
			out = append(out, x.(string))
		}
		return out
	}
	return nil
}

// compare checks the schema at where against typ; nullable says that Go
// may write null there.
func (c *schemaCmp) compare(where string, raw map[string]any, typ reflect.Type, nullable bool) {
	t := c.t
	t.Helper()
	sch, _ := c.s.resolve(raw)
	types := schemaTypes(sch)
	if !c.request && nullable && len(types) > 0 && !slices.Contains(types, "null") {
		t.Errorf("%s: Go may write null here (a nil %s): the schema's type needs \"null\" (or make the field omitempty)", where, typ)
	}
	wantType := func(jt string) {
		t.Helper()
		if len(types) > 0 && !slices.Contains(types, jt) {
			t.Errorf("%s: Go type %s is a JSON %s; the schema says %v", where, typ, jt, types)
		}
		if len(types) == 0 && typ.Kind() != reflect.Interface {
			t.Errorf("%s: the schema has no type; Go type %s is a JSON %s", where, typ, jt)
		}
	}
	switch {
	case typ == timeType:
		wantType("string")
		if sch["format"] != "date-time" {
			t.Errorf("%s: a time.Time wants format date-time", where)
		}
		return
	case typ == durationType:
		wantType("string")
		if c.request {
			wantType("number") // a number of seconds is accepted too
		}
		return
	case typ == skipTaskType:
		// Its own JSON methods: a task id or a [task_id, map_index] pair.
		var kinds []string
		for _, o := range anySlice(sch["oneOf"]) {
			kinds = append(kinds, schemaTypes(o.(map[string]any))...)
		}
		if !slices.Equal(kinds, []string{"string", "array"}) {
			t.Errorf("%s: an execution.SkipTask wants oneOf a string and an array (a [task_id, map_index] pair), not %v", where, kinds)
		}
		return
	case typ == stateType:
		wantType("string")
		valid := activity.State.Valid
		if strings.Contains(where, runTIType.String()) || strings.HasSuffix(where, "task_instances[].state") {
			valid = dag.ValidTIState // a run's instance adds none, scheduled, upstream_failed
		}
		for _, e := range anySlice(sch["enum"]) {
			if !valid(activity.State(fmt.Sprint(e))) {
				t.Errorf("%s: enum value %v is no activity.State", where, e)
			}
		}
		if sch["enum"] == nil {
			t.Errorf("%s: an activity.State wants an enum of the states", where)
		}
		return
	}
	switch typ.Kind() {
	case reflect.Pointer:
		c.compare(where, raw, typ.Elem(), nullable)
	case reflect.String:
		wantType("string")
	case reflect.Bool:
		wantType("boolean")
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		wantType("integer")
	case reflect.Float32, reflect.Float64:
		wantType("number")
	case reflect.Interface:
		if len(types) > 0 {
			t.Errorf("%s: Go type %s holds any JSON value; the schema allows only %v", where, typ, types)
		}
	case reflect.Slice, reflect.Array:
		wantType("array")
		if items, ok := sch["items"].(map[string]any); ok {
			c.compare(where+"[]", items, typ.Elem(), typ.Elem().Kind() == reflect.Pointer)
		} else {
			t.Errorf("%s: an array wants items", where)
		}
	case reflect.Map:
		wantType("object")
		switch ap := sch["additionalProperties"].(type) {
		case bool:
			if !ap {
				t.Errorf("%s: a Go map takes any key: additionalProperties must not be false", where)
			} else if typ.Elem().Kind() != reflect.Interface {
				t.Errorf("%s: the map's values are %s: additionalProperties wants their schema", where, typ.Elem())
			}
		case map[string]any:
			c.compare(where+"{}", ap, typ.Elem(), false)
		default:
			t.Errorf("%s: a Go map wants additionalProperties (its values' schema, or true)", where)
		}
	case reflect.Struct:
		wantType("object")
		c.compareStruct(where, sch, typ)
	default:
		t.Errorf("%s: Go type %s: no JSON mapping known to the test", where, typ)
	}
}

func anySlice(v any) []any { s, _ := v.([]any); return s }

// jsonField is a field as encoding/json writes it.
type jsonField struct {
	name string
	typ  reflect.Type
	// omitted: json may leave it out (omitempty on a kind it applies to,
	// or omitzero).
	omitted bool
	// nilable: json may write null (a nil slice, map, pointer or interface).
	nilable bool
}

// jsonFields lists typ's JSON fields, embedded structs without a tag
// flattened, as encoding/json does.
func jsonFields(typ reflect.Type) []jsonField {
	var out []jsonField
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			out = append(out, jsonFields(f.Type)...)
			continue
		}
		if name == "" {
			name = f.Name
		}
		omitempty := slices.Contains(strings.Split(opts, ","), "omitempty")
		omitzero := slices.Contains(strings.Split(opts, ","), "omitzero")
		k := f.Type.Kind()
		emptyApplies := k != reflect.Struct // encoding/json's omitempty never omits a struct
		nilable := k == reflect.Slice || k == reflect.Map || k == reflect.Pointer || k == reflect.Interface
		if f.Tag.Get("oa") == "nonnull" {
			nilable = false
		}
		out = append(out, jsonField{name: name, typ: f.Type, omitted: omitzero || (omitempty && emptyApplies), nilable: nilable})
	}
	return out
}

func (c *schemaCmp) compareStruct(where string, sch map[string]any, typ reflect.Type) {
	t := c.t
	t.Helper()
	props, _ := sch["properties"].(map[string]any)
	fields := jsonFields(typ)
	names := map[string]bool{}
	for _, f := range fields {
		names[f.name] = true
		p, ok := props[f.name].(map[string]any)
		if !ok {
			t.Errorf("%s: field %q of %s is not in the schema's properties", where, f.name, typ)
			continue
		}
		c.compare(where+"."+f.name, p, f.typ, f.nilable && !f.omitted)
	}
	for name := range props {
		if !names[name] {
			t.Errorf("%s: property %q is no JSON field of %s", where, name, typ)
		}
	}
	required := map[string]bool{}
	for _, r := range anySlice(sch["required"]) {
		required[r.(string)] = true
		if !names[r.(string)] {
			t.Errorf("%s: required %q is no JSON field of %s", where, r, typ)
		}
	}
	if c.request {
		// decodeJSON refuses unknown fields, in nested structs too.
		if sch["additionalProperties"] != false {
			t.Errorf("%s: the server refuses unknown fields of %s: additionalProperties must be false", where, typ)
		}
		return
	}
	if sch["additionalProperties"] != false {
		t.Errorf("%s: an answer of %s has exactly its fields: additionalProperties must be false", where, typ)
	}
	for _, f := range fields {
		if !f.omitted && !required[f.name] {
			t.Errorf("%s: Go always writes %q of %s: it must be required", where, f.name, typ)
		}
		if f.omitted && required[f.name] {
			t.Errorf("%s: Go leaves out %q of %s when empty: it must not be required", where, f.name, typ)
		}
	}
}

// TestAPIFuzzFindings keeps fixed what schemathesis found
// (integration.TestSchemathesis).
func TestAPIFuzzFindings(t *testing.T) {
	f := newFixture(t, queue.Config{}, Config{})
	ti := f.submit(activity.TaskSpec{Queue: "q", Entrypoint: activity.Entrypoint{Command: []string{"true"}}})
	var last *http.Response
	do := func(method, path, body string) int {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, f.srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		last = resp
		return resp.StatusCode
	}
	for _, tc := range []struct {
		name, method, path, body string
		want                     int
	}{
		// The /api/ catch-all shadowed ServeMux's 405 with a 404.
		{"api-wrong-method", "DELETE", "/api/v1/task-instances/x", "", 405},
		{"api-no-route", "GET", "/api/v1/nothing", "", 404},
		{"execution-wrong-method", "PATCH", "/execution/variables/k", "", 405},
		{"execution-no-route", "GET", "/execution/nothing", "", 404},
		// An id that is no NATS key was a 500 (update cas: invalid key).
		{"cancel-id-no-key", "POST", "/api/v1/task-instances/F%C2%A0%C2%8B4%F2%A7%90%97/cancel", "", 404},
		{"retry-id-no-key", "POST", "/api/v1/task-instances/a%20b/retry", "", 404},
		{"get-id-no-key", "GET", "/api/v1/task-instances/a%20b", "", 404},
		// null decoded as an empty object: a variable stored from nothing.
		{"null-body", "PUT", "/api/v1/variables/k", "null", 400},
		{"array-body", "PUT", "/api/v1/variables/k", "[]", 400},
		// A follow that is no boolean was read as false.
		{"logs-follow-null", "GET", "/api/v1/task-instances/" + ti.ID + "/logs?follow=null", "", 400},
		{"logs-follow-false", "GET", "/api/v1/task-instances/" + ti.ID + "/logs?follow=false", "", 200},
		// A null duration was refused as the invalid duration "".
		{"null-duration", "POST", "/api/v1/activities", `{"queue":"q","command":["true"],"retry_delay":null,"execution_timeout":null}`, 201},
		// Empty ids take their defaults.
		{"empty-ids", "POST", "/api/v1/activities", `{"queue":"q","command":["true"],"dag_id":"","task_id":"","run_id":""}`, 201},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := do(tc.method, tc.path, tc.body); got != tc.want {
				t.Errorf("%s %s %s: %d, want %d", tc.method, tc.path, tc.body, got, tc.want)
			}
			if tc.want == 405 && last.Header.Get("Allow") == "" {
				t.Errorf("%s %s: 405 without an Allow header", tc.method, tc.path)
			}
			if ct := last.Header.Get("Content-Type"); tc.want >= 400 && ct != "application/json" {
				t.Errorf("%s %s: %d answered as %q, want an ErrorBody", tc.method, tc.path, tc.want, ct)
			}
		})
	}
}
