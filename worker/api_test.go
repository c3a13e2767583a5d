package worker

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/execution"
)

// fakeAPI is an in-test Execution API that records the worker's calls. It
// answers …/run for any task instance registered with add.
type fakeAPI struct {
	t   testing.TB
	srv *httptest.Server

	mu         sync.Mutex
	tis        map[string]fakeTI
	runs       map[string]int
	heartbeats map[string]int
	states     map[string][]execution.StateRequest
	vars       map[string]string
	xcoms      map[string]any
	conns      map[string]activity.Connection
	stateCh    chan string         // ti id of each state call
	varTokens  map[string][]string // variable key → Authorization of each read
}

type fakeTI struct {
	ti        activity.TI
	runStatus int // answer of …/run when not 0
	hbStatus  int // answer of heartbeats when not 0
	// hbAge answers heartbeats as accepted but not written, the recorded
	// one this old (the executor's Taskwire-Heartbeat-Age-Ms).
	hbAge      time.Duration
	zombie     activity.Duration // the executor's zombie threshold …/run tells
	stStatus   int               // answer of …/state when not 0
	runDelay   time.Duration     // …/run answers after it
	timeout    activity.Duration
	nextMethod string
	nextKwargs map[string]any
}

func newFakeAPI(t testing.TB) *fakeAPI {
	f := &fakeAPI{
		t: t, tis: map[string]fakeTI{}, runs: map[string]int{}, heartbeats: map[string]int{},
		states: map[string][]execution.StateRequest{}, vars: map[string]string{}, xcoms: map[string]any{},
		conns: map[string]activity.Connection{}, stateCh: make(chan string, 100), varTokens: map[string][]string{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("PATCH /execution/task-instances/{id}/run", f.run)
	mux.HandleFunc("PATCH /execution/task-instances/{id}/state", f.state)
	mux.HandleFunc("PUT /execution/task-instances/{id}/heartbeat", f.heartbeat)
	mux.HandleFunc("GET /execution/variables/{key}", f.getVar)
	mux.HandleFunc("PUT /execution/variables/{key}", f.putVar)
	mux.HandleFunc("GET /execution/connections/{id}", f.getConn)
	mux.HandleFunc("/execution/xcoms/{dag}/{run}/{task}/{key}", f.xcom)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPI) add(fti fakeTI) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tis[fti.ti.ID] = fti
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func apiErr(w http.ResponseWriter, status int, code string) {
	writeJSON(w, status, execution.ErrorBody{Error: code, Detail: code})
}

// authorized checks the execution token of the path's task instance.
func (f *fakeAPI) authorized(w http.ResponseWriter, r *http.Request, id string) bool {
	if r.Header.Get("Authorization") != "Bearer exec-"+id {
		apiErr(w, http.StatusForbidden, "forbidden")
		return false
	}
	return true
}

func (f *fakeAPI) run(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	f.mu.Lock()
	fti, known := f.tis[id]
	f.runs[id]++
	f.mu.Unlock()
	if fti.runDelay > 0 {
		select {
		case <-time.After(fti.runDelay):
		case <-r.Context().Done():
			return
		}
	}
	var req execution.RunRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Hostname == "" || req.WorkerID == "" || req.PID == 0 {
		apiErr(w, http.StatusBadRequest, "bad_request")
		return
	}
	switch {
	case !known:
		apiErr(w, http.StatusNotFound, "not_found")
	case r.Header.Get("Authorization") != "Bearer workload-"+id:
		apiErr(w, http.StatusUnauthorized, "unauthorized")
	case fti.runStatus != 0:
		apiErr(w, fti.runStatus, "refused")
	default:
		writeJSON(w, http.StatusOK, execution.RunResponse{TI: fti.ti, MaxTries: 3, Token: "exec-" + id,
			ExecutionTimeout: fti.timeout, NextMethod: fti.nextMethod, NextKwargs: fti.nextKwargs, ZombieThreshold: fti.zombie})
	}
}

func (f *fakeAPI) state(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !f.authorized(w, r, id) {
		return
	}
	var req execution.StateRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		apiErr(w, http.StatusBadRequest, "bad_request")
		return
	}
	f.mu.Lock()
	f.states[id] = append(f.states[id], req)
	st := f.tis[id].stStatus
	f.mu.Unlock()
	f.stateCh <- id
	if st != 0 {
		apiErr(w, st, "refused")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (f *fakeAPI) heartbeat(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !f.authorized(w, r, id) {
		return
	}
	f.mu.Lock()
	f.heartbeats[id]++
	st, age := f.tis[id].hbStatus, f.tis[id].hbAge
	f.mu.Unlock()
	if st != 0 {
		apiErr(w, st, "refused")
		return
	}
	if age > 0 {
		w.Header().Set(execution.HeaderHeartbeatAge, strconv.FormatInt(age.Milliseconds(), 10))
	}
	w.WriteHeader(http.StatusNoContent)
}

func (f *fakeAPI) getVar(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	v, ok := f.vars[r.PathValue("key")]
	f.varTokens[r.PathValue("key")] = append(f.varTokens[r.PathValue("key")], r.Header.Get("Authorization"))
	f.mu.Unlock()
	if !ok {
		apiErr(w, http.StatusNotFound, "not_found")
		return
	}
	writeJSON(w, http.StatusOK, execution.VariableBody{Key: r.PathValue("key"), Value: v})
}

func (f *fakeAPI) putVar(w http.ResponseWriter, r *http.Request) {
	var body execution.VariableBody
	_ = json.NewDecoder(r.Body).Decode(&body)
	f.mu.Lock()
	f.vars[r.PathValue("key")] = body.Value
	f.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (f *fakeAPI) getConn(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	c, ok := f.conns[r.PathValue("id")]
	f.mu.Unlock()
	if !ok {
		apiErr(w, http.StatusNotFound, "not_found")
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (f *fakeAPI) xcom(w http.ResponseWriter, r *http.Request) {
	key := strings.Join([]string{r.PathValue("dag"), r.PathValue("run"), r.PathValue("task"), r.PathValue("key"), r.URL.Query().Get("map_index")}, "/")
	f.mu.Lock()
	defer f.mu.Unlock()
	switch r.Method {
	case http.MethodGet:
		v, ok := f.xcoms[key]
		if !ok {
			apiErr(w, http.StatusNotFound, "not_found")
			return
		}
		writeJSON(w, http.StatusOK, execution.XComBody{Value: v})
	case http.MethodPost:
		var body execution.XComBody
		_ = json.NewDecoder(r.Body).Decode(&body)
		f.xcoms[key] = body.Value
		w.WriteHeader(http.StatusCreated)
	case http.MethodDelete:
		delete(f.xcoms, key)
		w.WriteHeader(http.StatusNoContent)
	}
}

func (f *fakeAPI) statesOf(id string) []execution.StateRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]execution.StateRequest(nil), f.states[id]...)
}

func (f *fakeAPI) heartbeatsOf(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.heartbeats[id]
}

func (f *fakeAPI) runsOf(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.runs[id]
}
