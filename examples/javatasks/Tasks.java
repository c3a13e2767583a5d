import io.taskwire.sdk.Connection;
import io.taskwire.sdk.DagRun;
import io.taskwire.sdk.Fail;
import io.taskwire.sdk.Json;
import io.taskwire.sdk.TaskContext;
import io.taskwire.sdk.TaskRuntime;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.Map;

/**
 * Tasks is a task runtime built with the Java SDK: the worker starts it per
 * task try, on a queue whose runtime is
 *
 * <pre>
 *   java:
 *     command: java -cp /opt/javatasks Tasks --comm {comm_addr} --logs {logs_addr}
 *     codec: json
 * </pre>
 *
 * and it runs the task the try names. Tasks:
 * <ul>
 *   <li>noop: succeeds;</li>
 *   <li>read_config: reads variable "greeting" and connection "db", logs
 *       them and pushes XCom "greeting";</li>
 *   <li>push: pushes XCom "value" = 42 and returns 42 (XCom "return_value");</li>
 *   <li>pull: pulls "value" from task push in the same run; fails (no retry)
 *       unless it is 42;</li>
 *   <li>fail: throws IllegalStateException (retried while tries remain);</li>
 *   <li>wait: defers on a "timedelta" trigger of params.seconds (default 1),
 *       then resumes in "resume", which logs "resumed" and returns the
 *       trigger's event;</li>
 *   <li>load: pulls XCom "return_value" of task params.from_task (default
 *       "transform"), logs it and returns "loaded &lt;value&gt;";</li>
 *   <li>run_info: returns its DAG run {dag_id, run_id, logical_date,
 *       run_type, conf} (null for a task submitted alone).</li>
 * </ul>
 */
public final class Tasks {
    private Tasks() {}

    public static void main(String[] args) {
        TaskRuntime rt = new TaskRuntime();
        rt.register("noop", Tasks::noop);
        rt.register("read_config", Tasks::readConfig);
        rt.register("push", Tasks::push);
        rt.register("pull", Tasks::pull);
        rt.register("fail", ctx -> {
            throw new IllegalStateException("failing on purpose");
        });
        rt.register("wait", Tasks::waitTask);
        rt.registerMethod("wait", "resume", Tasks::resume);
        rt.register("load", Tasks::load);
        rt.register("run_info", Tasks::runInfo);
        rt.main(args);
    }

    static Object noop(TaskContext ctx) {
        ctx.log().info("nothing to do");
        return null;
    }

    static Object readConfig(TaskContext ctx) {
        String greeting = ctx.variable("greeting");
        Connection db = ctx.connection("db");
        ctx.log().info("read config", "greeting", greeting, "conn_id", db.connId(), "conn_type", db.connType(),
                "host", db.host(), "port", db.port(), "login", db.login());
        ctx.xcomPush("greeting", greeting);
        return null;
    }

    static Object push(TaskContext ctx) {
        ctx.xcomPush("value", 42);
        ctx.log().info("pushed xcom", "key", "value", "value", 42);
        return 42;
    }

    static Object pull(TaskContext ctx) {
        Object v = ctx.xcomPull("push", "value");
        ctx.log().info("pulled xcom", "task_id", "push", "key", "value", "value", v);
        if (!(v instanceof Number n) || n.doubleValue() != 42) {
            throw new Fail("xcom value of push is " + v + ", want 42");
        }
        return null;
    }

    static Object waitTask(TaskContext ctx) {
        Object s = ctx.params().getOrDefault("seconds", 1);
        if (s == null) {
            s = 1;
        }
        if (!(s instanceof Number seconds)) {
            throw new Fail("params.seconds is " + s + ", want a number");
        }
        ctx.log().info("deferring", "trigger", "timedelta", "delta", seconds.doubleValue());
        return ctx.defer("timedelta", Map.of("delta", seconds.doubleValue()), "resume",
                Map.of("deferred_at", Instant.now().truncatedTo(ChronoUnit.SECONDS).toString()), null);
    }

    static Object resume(TaskContext ctx) {
        ctx.log().info("resumed", "trigger_event", ctx.event(), "deferred_at", ctx.nextKwargs().get("deferred_at"));
        return ctx.event();
    }

    /** Returns the task's DAG run: {dag_id, run_id, logical_date, run_type, conf}, or null when submitted alone. */
    static Object runInfo(TaskContext ctx) {
        DagRun r = ctx.dagRun();
        if (r == null) {
            return null;
        }
        ctx.log().info("dag run", "run_id", r.runId(), "logical_date", r.logicalDate(), "conf", ctx.conf());
        return Map.of("dag_id", r.dagId(), "run_id", r.runId(), "logical_date", r.logicalDate(), "run_type", r.runType(),
                "conf", ctx.conf());
    }

    static Object load(TaskContext ctx) {
        Object from = ctx.params().getOrDefault("from_task", "transform");
        if (from == null) {
            from = "transform";
        }
        if (!(from instanceof String fromTask) || fromTask.isEmpty()) {
            throw new Fail("params.from_task is " + from + ", want a task id");
        }
        Object v = ctx.xcomPull(fromTask, "return_value");
        ctx.log().info("loaded", "from_task", fromTask, "value", v);
        return "loaded " + (v instanceof String str ? str : Json.write(v, false));
    }
}
