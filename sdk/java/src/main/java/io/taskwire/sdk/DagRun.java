package io.taskwire.sdk;

import java.util.Collections;
import java.util.Map;

/**
 * The DAG run a task instance belongs to (StartupDetails'
 * ti_context.dag_run, Airflow's dag_run): its DAG, run id, logical date (an
 * RFC 3339 string), run type ("manual", "scheduled") and conf (read-only;
 * empty when the run has none).
 */
public record DagRun(String dagId, String runId, String logicalDate, String runType, Map<String, Object> conf) {

    static DagRun parse(Map<String, Object> m, String path) throws ProtocolException {
        return new DagRun(Protocol.str(m, "dag_id", path), Protocol.str(m, "run_id", path),
                Protocol.str(m, "logical_date", path), Protocol.str(m, "run_type", path),
                Collections.unmodifiableMap(Protocol.object(m, "conf", path)));
    }
}
