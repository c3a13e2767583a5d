package executor

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/taskwire/taskwire/dag"
)

func (e *Executor) routeDags(h func(string, http.HandlerFunc)) {
	h("GET /api/v1/dags", e.handleListDags)
	h("PUT /api/v1/dags/{dag_id}", e.handlePutDag)
	h("GET /api/v1/dags/{dag_id}", e.handleGetDag)
	h("DELETE /api/v1/dags/{dag_id}", e.handleDeleteDag)
	h("PATCH /api/v1/dags/{dag_id}", e.handlePatchDag)
	h("POST /api/v1/dags/{dag_id}/pause", e.handlePause(true))
	h("POST /api/v1/dags/{dag_id}/unpause", e.handlePause(false))
	h("POST /api/v1/dags/{dag_id}/runs", e.handleTriggerRun)
	h("GET /api/v1/dags/{dag_id}/runs", e.handleListRuns)
	h("GET /api/v1/dags/{dag_id}/runs/{run_id}", e.handleGetRun)
	h("GET /api/v1/dags/{dag_id}/runs/{run_id}/watch", e.handleWatchRun)
	h("POST /api/v1/dags/{dag_id}/runs/{run_id}/clear", e.handleClearRun)
}

// writeDagError answers a DAG validation error with its problems, and
// anything else as writeError does.
func (e *Executor) writeDagError(w http.ResponseWriter, r *http.Request, err error) {
	var ve *dag.ValidationError
	if errors.As(err, &ve) {
		writeJSON(w, http.StatusBadRequest, dag.ProblemsBody{Error: "bad_request", Detail: ve.Error(), Problems: ve.Problems})
		return
	}
	e.writeError(w, r, err)
}

func (e *Executor) handlePutDag(w http.ResponseWriter, r *http.Request) {
	doc, err := io.ReadAll(http.MaxBytesReader(w, r.Body, e.cfg.MaxBody))
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	rec, changed, err := e.PutDag(r.Context(), r.PathValue("dag_id"), doc)
	if err != nil {
		e.writeDagError(w, r, err)
		return
	}
	writeJSON(w, createdStatus(changed), rec)
}

func (e *Executor) handleGetDag(w http.ResponseWriter, r *http.Request) {
	rec, err := e.GetDag(r.Context(), r.PathValue("dag_id"))
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

func (e *Executor) handleListDags(w http.ResponseWriter, r *http.Request) {
	recs, err := e.ListDags(r.Context())
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	out := make([]dag.Summary, 0, len(recs))
	for _, rec := range recs {
		s := dag.Summary{DagID: rec.DagID, Version: rec.Version, Paused: rec.Paused, Schedule: rec.DAG.Schedule,
			Timezone: rec.DAG.Timezone, Tasks: len(rec.DAG.Tasks), NextRunAt: rec.NextRunAt, UpdatedAt: rec.UpdatedAt,
			LastRuns: []dag.RunSummary{}}
		runs, err := e.ListRuns(r.Context(), rec.DagID)
		if err != nil {
			e.writeError(w, r, err)
			return
		}
		for i, run := range runs {
			if i == 10 {
				break
			}
			s.LastRuns = append(s.LastRuns, run.Summary())
		}
		out = append(out, s)
	}
	writeJSON(w, http.StatusOK, map[string]any{"dags": out, "total": len(out)})
}

func (e *Executor) handleDeleteDag(w http.ResponseWriter, r *http.Request) {
	if err := e.DeleteDag(r.Context(), r.PathValue("dag_id")); err != nil {
		e.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// handlePatchDag is PATCH /api/v1/dags/{dag_id} {"is_paused": bool}, as
// Airflow's REST API.
func (e *Executor) handlePatchDag(w http.ResponseWriter, r *http.Request) {
	var body patchDagBody
	if err := decodeBody(w, r, e.cfg.MaxBody, &body); err != nil {
		e.writeError(w, r, err)
		return
	}
	if err := checkPatchDag(&body); err != nil {
		e.writeError(w, r, err)
		return
	}
	e.pause(w, r, *body.Paused)
}

func (e *Executor) handlePause(paused bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { e.pause(w, r, paused) }
}

func (e *Executor) pause(w http.ResponseWriter, r *http.Request, paused bool) {
	rec, err := e.SetDagPaused(r.Context(), r.PathValue("dag_id"), paused)
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

func (e *Executor) handleTriggerRun(w http.ResponseWriter, r *http.Request) {
	var req TriggerRequest
	err := e.decodeOptionalBody(w, r, &req)
	if err == nil {
		err = checkTrigger(&req)
	}
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	run, created, err := e.TriggerRun(r.Context(), r.PathValue("dag_id"), req)
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	writeJSON(w, createdStatus(created), e.runView(r.Context(), run))
}

func (e *Executor) handleListRuns(w http.ResponseWriter, r *http.Request) {
	dagID := r.PathValue("dag_id")
	if _, err := e.GetDag(r.Context(), dagID); err != nil {
		e.writeError(w, r, err)
		return
	}
	runs, err := e.ListRuns(r.Context(), dagID)
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	out := make([]dag.RunView, 0, len(runs))
	withTIs := r.URL.Query().Get("task_instances") == "true"
	for _, run := range runs {
		v := e.runView(r.Context(), run)
		if !withTIs {
			v.TaskInstances = nil
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"dag_runs": out, "total": len(out)})
}

func (e *Executor) handleGetRun(w http.ResponseWriter, r *http.Request) {
	run, err := e.GetRun(r.Context(), r.PathValue("dag_id"), r.PathValue("run_id"))
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, e.runView(r.Context(), run))
}

func (e *Executor) handleClearRun(w http.ResponseWriter, r *http.Request) {
	var req dag.ClearRequest
	if err := e.decodeOptionalBody(w, r, &req); err != nil {
		e.writeError(w, r, err)
		return
	}
	run, n, err := e.ClearRun(r.Context(), r.PathValue("dag_id"), r.PathValue("run_id"), req.TaskIDs, req.Downstream)
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	v := e.runView(r.Context(), run)
	v.Cleared = n
	writeJSON(w, http.StatusOK, v)
}

// runView shows run with its instances in DAG order; a scheduled
// instance shows its task-instance record's live state (queued, running,
// …), an undecided one "none".
func (e *Executor) runView(ctx context.Context, run *dag.Run) dag.RunView {
	v := dag.RunView{DagID: run.DagID, RunID: run.RunID, State: run.State, RunType: run.RunType,
		LogicalDate: run.LogicalDate, Conf: run.Conf, DagVersion: run.DagVersion, QueuedAt: run.QueuedAt,
		StartDate: run.StartDate, EndDate: run.EndDate, TaskInstances: []dag.RunTI{}, Counts: map[string]int{}}
	var order []string
	if d, err := e.dagVersion(ctx, run.DagID, run.DagVersion); err == nil {
		for _, t := range d.Tasks {
			order = append(order, t.TaskID)
			for _, up := range t.DependsOn {
				v.Edges = append(v.Edges, [2]string{up, t.TaskID})
			}
		}
	}
	if len(order) == 0 {
		for id := range run.Tasks {
			order = append(order, id)
		}
	}
	for _, id := range order {
		tr := run.Tasks[id]
		if tr == nil {
			continue
		}
		for _, in := range tr.Instances {
			st, ti := e.instanceState(in)
			tv := dag.RunTI{TaskID: id, MapIndex: in.MapIndex, State: st, TIID: in.TIID, TryNumber: in.Try,
				Reason: in.Reason, Mapped: tr.Expanded}
			if ti != nil {
				tv.TryNumber, tv.Queue, tv.StartDate, tv.EndDate = ti.TryNumber, ti.Queue, ti.StartDate, ti.EndDate
				if tv.Reason == "" {
					tv.Reason = ti.Reason
				}
			}
			if tv.State == dag.StateNone {
				tv.State = "none"
			}
			v.Counts[string(tv.State)]++
			v.TaskInstances = append(v.TaskInstances, tv)
		}
	}
	return v
}

// createdStatus is 201 for a request that made something, else 200 (the
// same document again, an existing run_id).
func createdStatus(created bool) int {
	if created {
		return http.StatusCreated
	}
	return http.StatusOK
}

// decodeOptionalBody decodes a JSON body into v; an empty body leaves v
// as it is (every field is optional).
func (e *Executor) decodeOptionalBody(w http.ResponseWriter, r *http.Request, v any) error {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, e.cfg.MaxBody))
	if err != nil || len(data) == 0 {
		return err
	}
	return decodeJSON(data, v)
}

// patchDagBody is the body of PATCH /api/v1/dags/{dag_id}.
type patchDagBody struct {
	Paused *bool `json:"is_paused"`
}

func checkPatchDag(b *patchDagBody) error {
	if b.Paused == nil {
		return badRequest("body needs is_paused")
	}
	return nil
}

// checkTrigger checks a trigger body's run_id (the rest is checked by
// its decoding).
func checkTrigger(req *TriggerRequest) error {
	if req.RunID != "" && !validRunID(req.RunID) {
		return badRequest("run_id %q must be 1-250 characters of [A-Za-z0-9_.:+@-]", req.RunID)
	}
	return nil
}
