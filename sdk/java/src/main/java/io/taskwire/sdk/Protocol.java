package io.taskwire.sdk;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The task protocol's bodies with the JSON codec, as Go's protocol package
 * (CodecJSON) writes them: a request is {@code [id, msg]}, a response {@code
 * [id, msg, error]} (a missing error is accepted); msg is an object whose
 * "type" names the message. The builders write each message's fields in the
 * Go struct's order and leave out the fields Go omits when empty, so that
 * the same message encodes to the same bytes in both SDKs.
 *
 * <p>This is the low-level layer under {@link TaskRuntime}; task code does not
 * need it. Messages are plain maps.
 */
public final class Protocol {
    private Protocol() {}

    // Message types, Airflow's Task SDK names.
    public static final String STARTUP_DETAILS = "StartupDetails";

    /**
     * The body of the auth frame a runtime sends first on every comm
     * connection: {@code {"type":"Auth","secret":…}} in JSON whatever the
     * codec (Go's protocol.AuthFrame; golden vector
     * protocol/testdata/auth_frame.bin).
     */
    static byte[] authBody(String secret) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("type", "Auth");
        m.put("secret", secret);
        return Json.write(m).getBytes(java.nio.charset.StandardCharsets.UTF_8);
    }

    /**
     * The first line (without its newline) of every log connection (Go's
     * protocol.LogStreamHeader): the secret alone for a cold runtime, with
     * the try (tiId, tryNumber) for a warm try's own stream, with mux for a
     * warm process's multiplexed one (golden vectors protocol/testdata/log_stream_*).
     */
    static String logHeader(String secret, String tiId, long tryNumber, boolean mux) {
        Map<String, Object> h = new LinkedHashMap<>();
        if (tiId != null && !tiId.isEmpty()) {
            h.put("ti_id", tiId);
        }
        if (tryNumber > 0) {
            h.put("try_number", tryNumber);
        }
        if (mux) {
            h.put("mux", true);
        }
        h.put("secret", secret);
        return Json.write(h);
    }
    public static final String CONNECTION_RESULT = "ConnectionResult";
    public static final String VARIABLE_RESULT = "VariableResult";
    public static final String XCOM_RESULT = "XComResult";
    public static final String OK_RESPONSE = "OKResponse";
    public static final String ERROR_RESPONSE = "ErrorResponse";
    public static final String GET_CONNECTION = "GetConnection";
    public static final String GET_VARIABLE = "GetVariable";
    public static final String PUT_VARIABLE = "PutVariable";
    public static final String GET_XCOM = "GetXCom";
    public static final String SET_XCOM = "SetXCom";
    public static final String DELETE_XCOM = "DeleteXCom";
    public static final String DEFER_TASK = "DeferTask";
    public static final String RETRY_TASK = "RetryTask";
    public static final String SUCCEED_TASK = "SucceedTask";
    public static final String TASK_STATE = "TaskState";
    public static final String MASK_SECRET = "MaskSecret";

    /** The next_method of a task resumed after its trigger failed (Airflow's "__fail__"). */
    public static final String FAIL_METHOD = "__fail__";

    /** A decoded request body. */
    public record Request(long id, Map<String, Object> msg) {}

    /** A decoded response body; msg and error may be null. */
    public record Response(long id, Map<String, Object> msg, Map<String, Object> error) {}

    // ----------------------------------------------------------- bodies

    /** Encodes the request body {@code [id, msg]}. */
    public static byte[] encodeRequest(long id, Map<String, Object> msg) {
        if (msg == null) {
            throw new IllegalArgumentException("request " + id + ": nil message");
        }
        return Json.writeBytes(Arrays.asList(id, msg), false);
    }

    /** Encodes the response body {@code [id, msg, error]}; msg and error may be null. */
    public static byte[] encodeResponse(long id, Map<String, Object> msg, Map<String, Object> error) {
        return Json.writeBytes(Arrays.asList(id, msg, error), false);
    }

    /** Decodes a request body {@code [id, msg]}. */
    public static Request decodeRequest(byte[] body) throws ProtocolException {
        List<?> arr = array(body, "request");
        long id = id(arr.get(0), "request");
        if (arr.size() == 3 && arr.get(2) != null) {
            throw new ProtocolException("request " + id + ": a request has no error element");
        }
        if (arr.get(1) == null) {
            throw new ProtocolException("request " + id + ": msg is null");
        }
        return new Request(id, message(arr.get(1), "request " + id));
    }

    /** Decodes a response body {@code [id, msg, error]} or {@code [id, msg]}. */
    public static Response decodeResponse(byte[] body) throws ProtocolException {
        List<?> arr = array(body, "response");
        long id = id(arr.get(0), "response");
        Map<String, Object> msg = arr.get(1) == null ? null : message(arr.get(1), "response " + id);
        Map<String, Object> err = null;
        if (arr.size() == 3 && arr.get(2) != null) {
            if (!(arr.get(2) instanceof Map)) {
                throw new ProtocolException("response " + id + ": error is " + kind(arr.get(2)) + ", want an object or null");
            }
            err = cast(arr.get(2));
            Object t = err.get("type");
            if (t != null && !ERROR_RESPONSE.equals(t)) {
                throw new ProtocolException("response " + id + ": error has type " + t + ", want " + ERROR_RESPONSE);
            }
        }
        return new Response(id, msg, err);
    }

    private static List<?> array(byte[] body, String what) throws ProtocolException {
        Object v;
        try {
            v = Json.parse(body);
        } catch (JsonException e) {
            throw new ProtocolException("malformed " + what + ": " + e.getMessage(), e);
        }
        if (!(v instanceof List<?> arr)) {
            throw new ProtocolException("malformed " + what + ": body is " + kind(v) + ", want an array");
        }
        if (arr.size() < 2 || arr.size() > 3) {
            throw new ProtocolException("malformed " + what + ": body has " + arr.size() + " elements, want 2 or 3");
        }
        return arr;
    }

    private static long id(Object v, String what) throws ProtocolException {
        Long n = integral(v);
        if (n == null) {
            throw new ProtocolException("malformed " + what + ": id is " + kind(v) + ", want an integer");
        }
        return n;
    }

    private static Map<String, Object> message(Object v, String what) throws ProtocolException {
        if (!(v instanceof Map)) {
            throw new ProtocolException(what + ": msg is " + kind(v) + ", want an object");
        }
        Map<String, Object> m = cast(v);
        Object t = m.get("type");
        if (!(t instanceof String)) {
            throw new ProtocolException(what + ": msg type is " + kind(t) + ", want a string");
        }
        return m;
    }

    /** The type of a message, or "nothing" for null. */
    public static String type(Map<String, Object> msg) {
        if (msg == null) {
            return "nothing";
        }
        Object t = msg.get("type");
        return t instanceof String s ? s : "a message without a type";
    }

    // -------------------------------------------------- task -> worker messages

    public static Map<String, Object> getConnection(String connId) {
        Map<String, Object> m = msg(GET_CONNECTION);
        m.put("conn_id", nz(connId));
        return m;
    }

    public static Map<String, Object> getVariable(String key) {
        Map<String, Object> m = msg(GET_VARIABLE);
        m.put("key", nz(key));
        return m;
    }

    public static Map<String, Object> putVariable(String key, String value, String description) {
        Map<String, Object> m = msg(PUT_VARIABLE);
        m.put("key", nz(key));
        m.put("value", nz(value));
        putString(m, "description", description);
        return m;
    }

    /** GetXCom; mapIndex null leaves map_index out (the worker reads -1). */
    public static Map<String, Object> getXCom(String key, String dagId, String runId, String taskId, Integer mapIndex) {
        Map<String, Object> m = msg(GET_XCOM);
        m.put("key", nz(key));
        m.put("dag_id", nz(dagId));
        m.put("run_id", nz(runId));
        m.put("task_id", nz(taskId));
        if (mapIndex != null) {
            m.put("map_index", (long) mapIndex);
        }
        return m;
    }

    public static Map<String, Object> setXCom(String key, Object value, String dagId, String runId, String taskId, Integer mapIndex) {
        Map<String, Object> m = msg(SET_XCOM);
        m.put("key", nz(key));
        m.put("value", value);
        m.put("dag_id", nz(dagId));
        m.put("run_id", nz(runId));
        m.put("task_id", nz(taskId));
        if (mapIndex != null) {
            m.put("map_index", (long) mapIndex);
        }
        return m;
    }

    public static Map<String, Object> deleteXCom(String key, String dagId, String runId, String taskId, Integer mapIndex) {
        Map<String, Object> m = msg(DELETE_XCOM);
        m.put("key", nz(key));
        m.put("dag_id", nz(dagId));
        m.put("run_id", nz(runId));
        m.put("task_id", nz(taskId));
        if (mapIndex != null) {
            m.put("map_index", (long) mapIndex);
        }
        return m;
    }

    /** DeferTask; triggerTimeout is a Go duration string ("90s") or null/"" for none. */
    public static Map<String, Object> deferTask(String classpath, Map<String, ?> triggerKwargs, String triggerTimeout,
            String nextMethod, Map<String, ?> nextKwargs) {
        Map<String, Object> m = msg(DEFER_TASK);
        m.put("classpath", nz(classpath));
        putMap(m, "trigger_kwargs", triggerKwargs);
        putString(m, "trigger_timeout", triggerTimeout);
        m.put("next_method", nz(nextMethod));
        putMap(m, "next_kwargs", nextKwargs);
        return m;
    }

    public static Map<String, Object> retryTask(String endDate, String reason) {
        Map<String, Object> m = msg(RETRY_TASK);
        putString(m, "end_date", endDate);
        putString(m, "reason", reason);
        return m;
    }

    public static Map<String, Object> succeedTask(String endDate) {
        Map<String, Object> m = msg(SUCCEED_TASK);
        putString(m, "end_date", endDate);
        return m;
    }

    /** TaskState: state is failed, skipped or removed. */
    public static Map<String, Object> taskState(String state, String endDate, String reason) {
        Map<String, Object> m = msg(TASK_STATE);
        m.put("state", nz(state));
        putString(m, "end_date", endDate);
        putString(m, "reason", reason);
        return m;
    }

    public static Map<String, Object> maskSecret(String value, String name) {
        Map<String, Object> m = msg(MASK_SECRET);
        m.put("value", nz(value));
        putString(m, "name", name);
        return m;
    }

    // -------------------------------------------------- worker -> task messages

    /** StartupDetails; params, nextMethod and nextKwargs may be null. */
    public static Map<String, Object> startupDetails(TaskInstance ti, int maxTries, String queue, String entrypoint,
            Map<String, ?> params, String nextMethod, Map<String, ?> nextKwargs, String startDate) {
        return startupDetails(ti, maxTries, queue, entrypoint, params, nextMethod, nextKwargs, startDate, null);
    }

    /** StartupDetails of a task instance of a DAG run (dagRun null: a task submitted alone). */
    public static Map<String, Object> startupDetails(TaskInstance ti, int maxTries, String queue, String entrypoint,
            Map<String, ?> params, String nextMethod, Map<String, ?> nextKwargs, String startDate, DagRun dagRun) {
        Map<String, Object> t = new LinkedHashMap<>();
        t.put("id", nz(ti.id()));
        t.put("dag_id", nz(ti.dagId()));
        t.put("task_id", nz(ti.taskId()));
        t.put("run_id", nz(ti.runId()));
        t.put("map_index", (long) ti.mapIndex());
        t.put("try_number", (long) ti.tryNumber());
        Map<String, Object> c = new LinkedHashMap<>();
        c.put("max_tries", (long) maxTries);
        c.put("queue", nz(queue));
        c.put("entrypoint", nz(entrypoint));
        putMap(c, "params", params);
        if (dagRun != null) {
            Map<String, Object> r = new LinkedHashMap<>();
            r.put("dag_id", nz(dagRun.dagId()));
            r.put("run_id", nz(dagRun.runId()));
            r.put("logical_date", nz(dagRun.logicalDate()));
            putString(r, "run_type", dagRun.runType());
            putMap(r, "conf", dagRun.conf());
            c.put("dag_run", r);
        }
        Map<String, Object> m = msg(STARTUP_DETAILS);
        m.put("ti", t);
        m.put("ti_context", c);
        putString(m, "next_method", nextMethod);
        putMap(m, "next_kwargs", nextKwargs);
        m.put("start_date", nz(startDate));
        return m;
    }

    public static Map<String, Object> connectionResult(Connection c) {
        Map<String, Object> m = msg(CONNECTION_RESULT);
        m.put("conn_id", nz(c.connId()));
        m.put("conn_type", nz(c.connType()));
        putString(m, "host", c.host());
        putString(m, "schema", c.schema());
        putString(m, "login", c.login());
        putString(m, "password", c.password());
        if (c.port() != 0) {
            m.put("port", (long) c.port());
        }
        putMap(m, "extra", c.extra());
        return m;
    }

    public static Map<String, Object> variableResult(String key, String value) {
        Map<String, Object> m = msg(VARIABLE_RESULT);
        m.put("key", nz(key));
        m.put("value", nz(value));
        return m;
    }

    public static Map<String, Object> xcomResult(String key, Object value) {
        Map<String, Object> m = msg(XCOM_RESULT);
        m.put("key", nz(key));
        m.put("value", value);
        return m;
    }

    public static Map<String, Object> okResponse() {
        return msg(OK_RESPONSE);
    }

    /** An ErrorResponse, the error element of a response. */
    public static Map<String, Object> errorResponse(String error, Map<String, ?> detail) {
        Map<String, Object> m = msg(ERROR_RESPONSE);
        m.put("error", nz(error));
        putMap(m, "detail", detail);
        return m;
    }

    // ----------------------------------------------------------- helpers

    private static Map<String, Object> msg(String type) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("type", type);
        return m;
    }

    private static String nz(String s) {
        return s == null ? "" : s;
    }

    private static void putString(Map<String, Object> m, String key, String v) {
        if (v != null && !v.isEmpty()) {
            m.put(key, v);
        }
    }

    private static void putMap(Map<String, Object> m, String key, Map<String, ?> v) {
        if (v != null && !v.isEmpty()) {
            m.put(key, v);
        }
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> cast(Object m) {
        return (Map<String, Object>) m;
    }

    /** v as a long when it is an integer (or a double with an integral value), else null. */
    static Long integral(Object v) {
        if (v instanceof Long n) {
            return n;
        }
        if (v instanceof Integer n) {
            return (long) n;
        }
        if (v instanceof Double d && d == Math.rint(d) && d >= -0x1p63 && d < 0x1p63) {
            return d.longValue();
        }
        return null;
    }

    /** The JSON kind of a decoded value, for errors. */
    static String kind(Object v) {
        if (v == null) {
            return "null";
        }
        if (v instanceof String) {
            return "a string";
        }
        if (v instanceof Boolean) {
            return "a bool";
        }
        if (v instanceof Long) {
            return "an integer";
        }
        if (v instanceof Number) {
            return "a number";
        }
        if (v instanceof List) {
            return "an array";
        }
        if (v instanceof Map) {
            return "an object";
        }
        return v.getClass().getSimpleName();
    }

    /** The string field key of m ("" when missing or null). */
    static String str(Map<String, Object> m, String key, String path) throws ProtocolException {
        Object v = m.get(key);
        if (v == null) {
            return "";
        }
        if (!(v instanceof String s)) {
            throw new ProtocolException(path + "." + key + " is " + kind(v) + ", want a string");
        }
        return s;
    }

    /** The integer field key of m (0 when missing or null). */
    static int integer(Map<String, Object> m, String key, String path) throws ProtocolException {
        Object v = m.get(key);
        if (v == null) {
            return 0;
        }
        Long n = integral(v);
        if (n == null || n < Integer.MIN_VALUE || n > Integer.MAX_VALUE) {
            throw new ProtocolException(path + "." + key + " is " + kind(v) + (n == null ? "" : " out of range") + ", want an integer");
        }
        return (int) (long) n;
    }

    /** The object field key of m (empty when missing or null). */
    static Map<String, Object> object(Map<String, Object> m, String key, String path) throws ProtocolException {
        Object v = m.get(key);
        if (v == null) {
            return new LinkedHashMap<>();
        }
        if (!(v instanceof Map)) {
            throw new ProtocolException(path + "." + key + " is " + kind(v) + ", want an object");
        }
        return cast(v);
    }
}
