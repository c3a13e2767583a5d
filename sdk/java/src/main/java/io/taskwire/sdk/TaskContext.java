package io.taskwire.sdk;

import java.time.Duration;
import java.util.Map;

/**
 * The running task try, as its {@link Task} sees it: who it is, its params,
 * how it was resumed, and requests to the worker (variables, connections,
 * XComs, secrets to mask, deferral), which the worker answers through the
 * Execution API with the task's own credentials.
 *
 * <p>Requests block until the worker answers. An ErrorResponse becomes a
 * {@link TaskwireApiException} (for example "not_found"); a lost connection a
 * {@link TaskwireException}. A TaskContext may be used from several threads;
 * their requests go out one at a time.
 *
 * <p>Decoded values are JSON-like: {@code Map<String,Object>}, {@code
 * List<Object>}, String, Long, Double, Boolean, null. Params and next_kwargs
 * pass through JSON on their way, so a number may arrive as a Long or a
 * Double: read numbers as {@link Number}.
 */
public final class TaskContext {
    private final StartupDetails sd;
    private final Client client;
    private final TaskLogger log;
    private volatile boolean deferred;
    private volatile boolean cancelled;

    TaskContext(StartupDetails sd, Client client, TaskLogger log) {
        this.sd = sd;
        this.client = client;
        this.log = log;
    }

    /**
     * Whether the worker cancelled the try (a warm runtime: timeout, kill
     * or shutdown). The task's thread is interrupted then too; a task should
     * return soon after, or its whole process is killed after the worker's
     * kill grace. In cold mode the worker ends the process instead, and this
     * stays false.
     */
    public boolean isCancelled() {
        return cancelled;
    }

    void cancel() {
        cancelled = true;
    }

    /** The task try: task-instance id, DAG, task, run, map index, try number. */
    public TaskInstance ti() {
        return sd.ti();
    }

    /** The name of the task this runtime runs: the entrypoint, else the task id. */
    public String taskName() {
        return sd.taskName();
    }

    /** How many tries the task has in all. */
    public int maxTries() {
        return sd.maxTries();
    }

    /** The queue the try ran from. */
    public String queue() {
        return sd.queue();
    }

    /** When the try started, as an RFC 3339 string. */
    public String startDate() {
        return sd.startDate();
    }

    /** The task's params (read-only; empty when it has none). */
    public Map<String, Object> params() {
        return sd.params();
    }

    /**
     * The DAG run the task instance belongs to (run id, logical date, run
     * type, conf), or null for a task submitted alone.
     */
    public DagRun dagRun() {
        return sd.dagRun();
    }

    /** The DAG run's conf (read-only; empty when none, or for a task submitted alone). */
    public Map<String, Object> conf() {
        return sd.dagRun() == null ? Map.of() : sd.dagRun().conf();
    }

    /** The method the task resumes at after a deferral; "" on a first run. */
    public String nextMethod() {
        return sd.nextMethod();
    }

    /** Whether the task resumes after a deferral. */
    public boolean isResumed() {
        return !sd.nextMethod().isEmpty();
    }

    /**
     * The kwargs for {@link #nextMethod()}, as the task deferred with them plus
     * the trigger's event under "event" (read-only; empty on a first run).
     */
    public Map<String, Object> nextKwargs() {
        return sd.nextKwargs();
    }

    /** The trigger's event payload, nextKwargs().get("event"): null on a first run or when it sent none. */
    public Object event() {
        return sd.nextKwargs().get("event");
    }

    /** The task's logger ("logger": "task"), writing to the task's log. */
    public TaskLogger log() {
        return log;
    }

    // ------------------------------------------------------------ variables

    /** The value of variable key; throws TaskwireApiException "not_found" when there is none. */
    public String variable(String key) {
        Map<String, Object> m = client.call(Protocol.getVariable(key));
        expect(m, Protocol.VARIABLE_RESULT);
        Object v = m.get("value");
        if (v != null && !(v instanceof String)) {
            throw new TaskwireException("get variable " + key + ": value is " + Protocol.kind(v) + ", want a string");
        }
        return v == null ? "" : (String) v;
    }

    /** The value of variable key, or def when there is none. */
    public String variable(String key, String def) {
        try {
            return variable(key);
        } catch (TaskwireApiException e) {
            if (e.isNotFound()) {
                return def;
            }
            throw e;
        }
    }

    /** Sets variable key to value. */
    public void setVariable(String key, String value) {
        setVariable(key, value, null);
    }

    /** Sets variable key to value, with a description. */
    public void setVariable(String key, String value, String description) {
        ok(Protocol.putVariable(key, value, description));
    }

    // ---------------------------------------------------------- connections

    /**
     * The connection connId; throws TaskwireApiException "not_found" when
     * there is none. The worker masks its password in the task's logs.
     */
    public Connection connection(String connId) {
        Map<String, Object> m = client.call(Protocol.getConnection(connId));
        expect(m, Protocol.CONNECTION_RESULT);
        String p = "ConnectionResult";
        try {
            return new Connection(Protocol.str(m, "conn_id", p), Protocol.str(m, "conn_type", p), Protocol.str(m, "host", p),
                    Protocol.str(m, "schema", p), Protocol.str(m, "login", p), Protocol.str(m, "password", p),
                    Protocol.integer(m, "port", p), Protocol.object(m, "extra", p));
        } catch (ProtocolException e) {
            throw new TaskwireException("get connection " + connId + ": " + e.getMessage(), e);
        }
    }

    // ---------------------------------------------------------------- XComs

    /**
     * Stores value as the XCom key of this try. value must be JSON-like (see
     * {@link Json}); one that is not throws a JsonException before anything is sent.
     */
    public void xcomPush(String key, Object value) {
        TaskInstance ti = sd.ti();
        ok(Protocol.setXCom(key, value, ti.dagId(), ti.runId(), ti.taskId(), ti.mapIndex()));
    }

    /** The XCom key pushed by task taskId in this DAG run; null when there is none. */
    public Object xcomPull(String taskId, String key) {
        TaskInstance ti = sd.ti();
        return xcomPull(ti.dagId(), ti.runId(), taskId, key);
    }

    /** The XCom key pushed by task taskId of DAG dagId in run runId; null when there is none. */
    public Object xcomPull(String dagId, String runId, String taskId, String key) {
        Map<String, Object> m = client.call(Protocol.getXCom(key, dagId, runId, taskId, null));
        expect(m, Protocol.XCOM_RESULT);
        return m.get("value");
    }

    /** Deletes the XCom key of this try. */
    public void xcomDelete(String key) {
        TaskInstance ti = sd.ti();
        ok(Protocol.deleteXCom(key, ti.dagId(), ti.runId(), ti.taskId(), ti.mapIndex()));
    }

    // -------------------------------------------------------------- secrets

    /** Asks the worker to mask value in the task's logs from now on. */
    public void maskSecret(String value) {
        maskSecret(value, null);
    }

    /** Asks the worker to mask value, named name, in the task's logs from now on. */
    public void maskSecret(String value, String name) {
        ok(Protocol.maskSecret(value, name));
    }

    // ------------------------------------------------------------- deferral

    /** {@link #defer(String, Map, String, Map, Duration)} with no next kwargs and no timeout. */
    public TaskDeferred defer(String trigger, Map<String, ?> kwargs, String nextMethod) {
        return defer(trigger, kwargs, nextMethod, null, null);
    }

    /**
     * Suspends the task until the trigger (its classpath, built with kwargs)
     * fires, or timeout passes (null or zero: no timeout); then the task runs
     * again, the same try, in the method registered for nextMethod with {@link
     * TaskRuntime#registerMethod} (else in its main entry), with nextKwargs
     * plus the trigger's event under "event". When the trigger fails or times
     * out, the try fails, retried as any error while tries remain.
     *
     * <p>It never returns normally: once the worker has accepted the deferral
     * it throws {@link TaskDeferred}, which the task must let propagate (the
     * return type lets you write {@code throw ctx.defer(...)} or {@code return
     * ctx.defer(...)}). A rejected deferral throws TaskwireApiException.
     */
    public TaskDeferred defer(String trigger, Map<String, ?> kwargs, String nextMethod, Map<String, ?> nextKwargs, Duration timeout) {
        if (deferred) {
            throw new IllegalStateException("defer to " + trigger + ": the task is deferred already");
        }
        if (trigger == null || trigger.isEmpty() || nextMethod == null || nextMethod.isEmpty()) {
            throw new IllegalArgumentException("defer needs a trigger and a next method");
        }
        if (Protocol.FAIL_METHOD.equals(nextMethod)) {
            throw new IllegalArgumentException("defer to " + trigger + ": next method " + Protocol.FAIL_METHOD + " is reserved");
        }
        if (timeout != null && timeout.isNegative()) {
            throw new IllegalArgumentException("defer to " + trigger + ": negative timeout " + timeout);
        }
        String t = timeout == null || timeout.isZero() ? null : GoDuration.format(timeout);
        ok(Protocol.deferTask(trigger, kwargs, t, nextMethod, nextKwargs));
        deferred = true;
        throw new TaskDeferred(trigger, nextMethod);
    }

    /** Whether DeferTask was accepted: the try's terminal message is sent. */
    boolean isDeferred() {
        return deferred;
    }

    // -------------------------------------------------------------- helpers

    private void ok(Map<String, Object> msg) {
        Map<String, Object> m = client.call(msg);
        if (m != null && !Protocol.OK_RESPONSE.equals(Protocol.type(m))) {
            throw new TaskwireException(Protocol.type(msg) + ": unexpected answer from the worker: " + Protocol.type(m));
        }
    }

    private static void expect(Map<String, Object> m, String type) {
        if (!type.equals(Protocol.type(m))) {
            throw new TaskwireException("unexpected answer from the worker: " + Protocol.type(m) + ", want " + type);
        }
    }
}
