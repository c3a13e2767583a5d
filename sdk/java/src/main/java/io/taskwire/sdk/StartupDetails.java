package io.taskwire.sdk;

import java.util.Collections;
import java.util.Map;

/** A decoded StartupDetails message; dagRun is null for a task submitted alone. */
record StartupDetails(TaskInstance ti, int maxTries, String queue, String entrypoint, Map<String, Object> params,
        String nextMethod, Map<String, Object> nextKwargs, String startDate, DagRun dagRun) {

    static StartupDetails parse(Map<String, Object> m) throws ProtocolException {
        String p = "StartupDetails";
        Map<String, Object> ti = Protocol.object(m, "ti", p);
        Map<String, Object> c = Protocol.object(m, "ti_context", p);
        String tp = p + ".ti", cp = p + ".ti_context";
        TaskInstance inst = new TaskInstance(Protocol.str(ti, "id", tp), Protocol.str(ti, "dag_id", tp),
                Protocol.str(ti, "task_id", tp), Protocol.str(ti, "run_id", tp), Protocol.integer(ti, "map_index", tp),
                Protocol.integer(ti, "try_number", tp));
        return new StartupDetails(inst, Protocol.integer(c, "max_tries", cp), Protocol.str(c, "queue", cp),
                Protocol.str(c, "entrypoint", cp), Collections.unmodifiableMap(Protocol.object(c, "params", cp)),
                Protocol.str(m, "next_method", p), Collections.unmodifiableMap(Protocol.object(m, "next_kwargs", p)),
                Protocol.str(m, "start_date", p),
                c.get("dag_run") == null ? null : DagRun.parse(Protocol.object(c, "dag_run", cp), cp + ".dag_run"));
    }

    /** The task to run: the entrypoint, else the task id. */
    String taskName() {
        return entrypoint.isEmpty() ? ti.taskId() : entrypoint;
    }
}
