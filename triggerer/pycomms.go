package triggerer

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/execution"
	"github.com/taskwire/taskwire/protocol"
)

// The requests of a running Python trigger (see pyRuntime): rate limit
// tokens and Airflow's messages of the trigger runner.

// pyRequest is a request line of the Python trigger runtime.
type pyRequest struct {
	Op  string `json:"op"`
	Req int64  `json:"req"`
	ID  string `json:"id"`
	// Key and Hold: acquire.
	Key  string `json:"key"`
	Hold bool   `json:"hold"`
	// Msg: comms, an Airflow message (ToTriggerSupervisor) as JSON.
	Msg map[string]any `json:"msg"`
}

// pyReply answers a request: Body (the Airflow response, or nil) or
// Error (an ErrorResponse: the runner raises it).
type pyReply struct {
	Op    string         `json:"op"`
	Req   int64          `json:"req"`
	Body  map[string]any `json:"body,omitempty"`
	Error map[string]any `json:"error,omitempty"`
}

type leaseKey struct {
	gen uint64
	req int64
}

// lease is an in-flight place of a rate limit held by trigger id.
type lease struct {
	id      string
	release func()
}

// goRelease gives a lease back in a goroutine of its own (KV writes),
// owned by the runtime.
func (p *pyRuntime) goRelease(l lease) {
	p.reqWG.Add(1)
	go func() {
		defer p.reqWG.Done()
		l.release()
	}()
}

// request serves one request of process generation gen.
func (p *pyRuntime) request(gen uint64, m pyRequest) {
	if m.Op == "release" {
		p.mu.Lock()
		l, ok := p.leases[leaseKey{gen, m.Req}]
		delete(p.leases, leaseKey{gen, m.Req})
		p.mu.Unlock()
		if ok {
			p.goRelease(l)
		}
		return
	}
	if m.Op != "acquire" && m.Op != "comms" {
		p.reply(gen, pyReply{Req: m.Req, Error: airflowError(errGeneric, map[string]any{"message": fmt.Sprintf("unknown op %q", m.Op)})})
		return
	}
	p.mu.Lock()
	lt := p.live[m.ID]
	p.mu.Unlock()
	if lt == nil {
		p.reply(gen, pyReply{Req: m.Req, Error: airflowError(errGeneric, map[string]any{"message": "trigger " + m.ID + " is not running here"})})
		return
	}
	p.reqWG.Add(1)
	go func() {
		defer p.reqWG.Done()
		if m.Op == "acquire" {
			p.acquire(gen, lt, m)
		} else {
			p.reply(gen, p.comms(lt, m))
		}
	}()
}

// acquire waits for a token of m.Key's rate limit; with m.Hold the
// in-flight place is kept until released (or the trigger ends).
func (p *pyRuntime) acquire(gen uint64, lt *pyTrigger, m pyRequest) {
	if err := activity.ValidateRateKey(m.Key); err != nil {
		p.reply(gen, pyReply{Req: m.Req, Error: airflowError(errGeneric, map[string]any{
			"message": fmt.Sprintf("rate key %q: 1-250 characters of [A-Za-z0-9_.:@-]", m.Key)})})
		return
	}
	release := noop
	if p.limiter != nil {
		var err error
		if release, err = p.limiter.Acquire(lt.ctx, m.Key); err != nil {
			return // the trigger stopped: nobody waits for the answer
		}
	}
	if !m.Hold {
		release()
		p.reply(gen, pyReply{Req: m.Req})
		return
	}
	p.mu.Lock()
	if p.gen != gen || p.live[lt.t.ID] != lt {
		p.mu.Unlock()
		release()
		return
	}
	p.leases[leaseKey{gen, m.Req}] = lease{id: lt.t.ID, release: release}
	p.mu.Unlock()
	p.reply(gen, pyReply{Req: m.Req})
}

// reply writes r to the process of generation gen, if it still runs.
func (p *pyRuntime) reply(gen uint64, r pyReply) {
	r.Op = "reply"
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gen == gen && p.stdin != nil {
		p.sendLocked(r)
	}
}

// Airflow's ErrorType values (airflow.sdk.exceptions.ErrorType).
const (
	errConnectionNotFound = "CONNECTION_NOT_FOUND"
	errVariableNotFound   = "VARIABLE_NOT_FOUND"
	errPermissionDenied   = "PERMISSION_DENIED"
	errGeneric            = "GENERIC_ERROR"
	errAPIServer          = "API_SERVER_ERROR"
)

// airflowError is an ErrorResponse body.
func airflowError(kind string, detail map[string]any) map[string]any {
	return map[string]any{"error": kind, "detail": detail, "type": "ErrorResponse"}
}

// apiFailure answers a request whose Execution API call failed, as
// Airflow's supervisor does (the error slot).
func apiFailure(req int64, err error) pyReply {
	status, kind := execution.StatusOf(err), errAPIServer
	if status == 403 {
		kind = errPermissionDenied
	}
	return pyReply{Req: req, Error: airflowError(kind, map[string]any{"status_code": status, "message": err.Error()})}
}

// comms answers an Airflow message of a trigger: connections, variables
// and XComs read with the trigger's token; MaskSecret masks the runtime's
// log. Anything else is an error the runner raises.
func (p *pyRuntime) comms(lt *pyTrigger, m pyRequest) pyReply {
	str := func(k string) string { s, _ := m.Msg[k].(string); return s }
	typ := str("type")
	if typ == "MaskSecret" {
		p.masks.add(m.Msg["value"], str("name"))
		return pyReply{Req: m.Req}
	}
	if lt.tc == nil {
		why := "this triggerer has no Execution API (triggerer --api-url)"
		if p.api != nil {
			why = "the trigger came without a trigger token"
		}
		return pyReply{Req: m.Req, Error: airflowError(errAPIServer, map[string]any{"status_code": 503, "message": typ + ": " + why})}
	}
	ctx := lt.ctx
	switch typ {
	case "GetConnection":
		id := str("conn_id")
		c, err := lt.tc.Connection(ctx, id)
		if errors.Is(err, execution.ErrNotFound) {
			return pyReply{Req: m.Req, Body: airflowError(errConnectionNotFound, map[string]any{"conn_id": id})}
		}
		if err != nil {
			return apiFailure(m.Req, err)
		}
		p.masks.add(c.Password, "")
		p.masks.add(c.Extra, "extra")
		return pyReply{Req: m.Req, Body: airflowConnection(c)}
	case "GetVariable":
		key := str("key")
		v, err := lt.tc.Variable(ctx, key)
		if errors.Is(err, execution.ErrNotFound) {
			return pyReply{Req: m.Req, Body: airflowError(errVariableNotFound, map[string]any{"key": key})}
		}
		if err != nil {
			return apiFailure(m.Req, err)
		}
		p.masks.add(v.Value, key)
		return pyReply{Req: m.Req, Body: map[string]any{"key": key, "value": v.Value, "type": "VariableResult"}}
	case "GetXCom":
		k := execution.XComKey{DagID: str("dag_id"), RunID: str("run_id"), TaskID: str("task_id"), Key: str("key"), MapIndex: -1}
		if n, ok := m.Msg["map_index"].(float64); ok {
			k.MapIndex = int(n)
		}
		v, err := lt.tc.XCom(ctx, k)
		if err != nil && !errors.Is(err, execution.ErrNotFound) {
			return apiFailure(m.Req, err)
		}
		return pyReply{Req: m.Req, Body: map[string]any{"key": k.Key, "value": v, "type": "XComResult"}}
	}
	return pyReply{Req: m.Req, Error: airflowError(errAPIServer, map[string]any{"status_code": 501,
		"message": fmt.Sprintf("taskwire's Python trigger runtime does not support %s: a trigger reads connections, variables and XComs only", typ)})}
}

// airflowConnection is c as Airflow's ConnectionResult body.
func airflowConnection(c activity.Connection) map[string]any {
	return protocol.AirflowConnection(c.ConnID, c.ConnType, c.Host, c.Schema, c.Login, c.Password, c.Port, c.Extra).Object()
}

// masker replaces secrets in the runtime's log lines with ***.
type masker struct {
	mu      sync.Mutex
	secrets []string
}

// minMask is the shortest value masked: shorter ones would mask common
// words (Airflow's masker skips them too).
const minMask = 5

// add masks v: a string unless name says it is not secret; of a map, the
// values under secret-sounding keys; of a list, each element.
func (m *masker) add(v any, name string) {
	switch x := v.(type) {
	case string:
		if len(x) < minMask || name != "" && !activity.SensitiveName(name) {
			return
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, s := range m.secrets {
			if s == x {
				return
			}
		}
		m.secrets = append(m.secrets, x)
	case map[string]any:
		for k, e := range x {
			m.add(e, k)
		}
	case []any:
		for _, e := range x {
			m.add(e, name)
		}
	}
}

func (m *masker) apply(s string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, sec := range m.secrets {
		s = strings.ReplaceAll(s, sec, "***")
	}
	return s
}
