package io.taskwire.sdk;

import static io.taskwire.sdk.Check.contains;
import static io.taskwire.sdk.Check.eq;
import static io.taskwire.sdk.Check.fails;
import static io.taskwire.sdk.Check.isTrue;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import java.util.concurrent.TimeUnit;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;

/** The runtime against an in-process fake worker on real sockets. */
@Timeout(value = 60, unit = TimeUnit.SECONDS) // a bound for a hang, not a speed target
class RuntimeTests {

    /** Runs rt against w (started here) and waits for both ends to finish. */
    static FakeWorker run(TaskRuntime rt, FakeWorker w) throws Exception {
        w.start();
        rt.run(w.commAddr(), w.logsAddr());
        w.await();
        return w;
    }

    static TaskRuntime one(String name, Task t) {
        return new TaskRuntime().register(name, t);
    }

    static Map<String, Object> map(Object... kv) {
        return ProtocolTests.map(kv);
    }

    @Test
    void testSuccessWithReturnValue() throws Exception {
        try (FakeWorker w = new FakeWorker()) {
            run(one("t", ctx -> List.of(1, "two", map("three", 3.5))), w);
            eq(List.of("SetXCom", "SucceedTask"), w.types(), "requests");
            Map<String, Object> x = w.messages().get(0);
            eq("return_value", x.get("key"), "xcom key");
            eq(List.of(1L, "two", map("three", 3.5)), x.get("value"), "xcom value");
            eq("etl", x.get("dag_id"), "dag_id");
            eq("r1", x.get("run_id"), "run_id");
            eq("t", x.get("task_id"), "task_id");
            eq(-1L, x.get("map_index"), "map_index");
            String end = (String) w.terminal().get("end_date");
            isTrue(end != null && end.endsWith("Z") && java.time.Instant.parse(end) != null, "end_date " + end);
            eq(1L, w.requests.get(0).id(), "first request id");
            eq(2L, w.requests.get(1).id(), "second request id");
        }
    }

    @Test
    void testDagRunInContext() throws Exception {
        AtomicReference<Object[]> got = new AtomicReference<>();
        try (FakeWorker w = new FakeWorker()) {
            w.dagRun = new DagRun("etl", "r1", "2026-11-22T00:00:00Z", "manual", map("day", "monday", "n", 3));
            run(one("t", ctx -> {
                got.set(new Object[] {ctx.dagRun(), ctx.conf()});
                return null;
            }), w);
            DagRun r = (DagRun) got.get()[0];
            eq("etl", r.dagId(), "dag_id");
            eq("r1", r.runId(), "run_id");
            eq("2026-11-22T00:00:00Z", r.logicalDate(), "logical_date");
            eq("manual", r.runType(), "run_type");
            eq(map("day", "monday", "n", 3L), got.get()[1], "conf");
            fails(UnsupportedOperationException.class, null, () -> r.conf().put("x", 1), "conf is read-only");
        }
        AtomicReference<Object[]> alone = new AtomicReference<>();
        try (FakeWorker w = new FakeWorker()) {
            run(one("t", ctx -> {
                alone.set(new Object[] {ctx.dagRun(), ctx.conf()});
                return null;
            }), w);
            eq(null, alone.get()[0], "a task submitted alone has no dag run");
            eq(Map.of(), alone.get()[1], "and an empty conf");
        }
    }

    @Test
    void testNullReturnPushesNothing() throws Exception {
        try (FakeWorker w = new FakeWorker()) {
            run(one("t", ctx -> null), w);
            eq(List.of("SucceedTask"), w.types(), "requests");
        }
    }

    @Test
    void testTooLargeNamesTheLimit() throws Exception {
        AtomicReference<TaskwireTooLargeException> got = new AtomicReference<>();
        try (FakeWorker w = new FakeWorker()) {
            w.errors.put("SetXCom", Protocol.errorResponse("too_large",
                    Map.of("message", "set xcom big: 413 too_large: request body exceeds the limit of 1024 bytes", "limit", 1024L)));
            run(one("t", ctx -> {
                got.set(fails(TaskwireTooLargeException.class, "1024 bytes", () -> ctx.xcomPush("big", "x".repeat(5000)), "big xcom"));
                return null;
            }), w);
            TaskwireTooLargeException e = got.get();
            eq("too_large", e.error(), "error");
            eq(1024L, e.limit().orElse(-1), "limit");
            isTrue(e instanceof TaskwireApiException, "an API exception");
            eq("SucceedTask", Protocol.type(w.terminal()), "terminal");
        }
        TaskwireTooLargeException bare = new TaskwireTooLargeException(Map.of("message", "too big"));
        isTrue(bare.limit().isEmpty(), "no limit");
        isTrue(bare.getMessage().contains("did not name the limit"), "message says so: " + bare.getMessage());
    }

    @Test
    void testVariableAndConnection() throws Exception {
        AtomicReference<Object[]> got = new AtomicReference<>();
        try (FakeWorker w = new FakeWorker()) {
            w.variables.put("greeting", "hello taskwire");
            w.connections.put("db", new Connection("db", "postgres", "db.internal", "app", "app_user", "s3cret", 5432,
                    map("sslmode", "require")));
            run(one("t", ctx -> {
                String g = ctx.variable("greeting");
                String d = ctx.variable("missing", "default");
                TaskwireApiException e = fails(TaskwireApiException.class, "variable nope not found", () -> ctx.variable("nope"), "missing");
                Connection c = ctx.connection("db");
                TaskwireApiException ce = fails(TaskwireApiException.class, "not_found", () -> ctx.connection("nodb"), "missing conn");
                ctx.setVariable("last_run", "today", "when it ran");
                got.set(new Object[] {g, d, e, c, ce});
                return null;
            }), w);
            Object[] g = got.get();
            eq("hello taskwire", g[0], "variable");
            eq("default", g[1], "variable default");
            TaskwireApiException e = (TaskwireApiException) g[2];
            isTrue(e.isNotFound(), "not found");
            eq("not_found", e.error(), "error");
            eq("variable nope not found", e.detail().get("message"), "detail");
            Connection c = (Connection) g[3];
            eq("db", c.connId(), "conn id");
            eq("postgres", c.connType(), "conn type");
            eq("db.internal", c.host(), "host");
            eq("app", c.schema(), "schema");
            eq("app_user", c.login(), "login");
            eq("s3cret", c.password(), "password");
            eq(5432, c.port(), "port");
            eq(map("sslmode", "require"), c.extra(), "extra");
            isTrue(!c.toString().contains("s3cret"), "toString hides the password: " + c);
            eq(map("type", "PutVariable", "key", "last_run", "value", "today", "description", "when it ran"), w.messages().get(5), "PutVariable");
            eq("today", w.variables.get("last_run"), "variable set");
            eq("SucceedTask", Protocol.type(w.terminal()), "terminal");
        }
    }

    @Test
    void testXComPushPull() throws Exception {
        AtomicReference<List<Object>> got = new AtomicReference<>();
        try (FakeWorker w = new FakeWorker()) {
            w.xcoms.put("upstream/value", 42L);
            run(one("t", ctx -> {
                List<Object> out = new ArrayList<>();
                ctx.xcomPush("mine", map("a", List.of(1, 2), "b", null));
                out.add(ctx.xcomPull("t", "mine"));
                out.add(ctx.xcomPull("upstream", "value"));
                out.add(ctx.xcomPull("upstream", "absent"));
                out.add(ctx.xcomPull("otherdag", "run9", "upstream", "value"));
                ctx.xcomDelete("mine");
                ctx.maskSecret("hunter2", "pw");
                fails(JsonException.class, "cannot encode", () -> ctx.xcomPush("bad", new Object()), "unencodable");
                got.set(out);
                return null;
            }), w);
            eq(map("a", List.of(1L, 2L), "b", null), got.get().get(0), "pulled own xcom");
            eq(42L, got.get().get(1), "pulled upstream");
            eq(null, got.get().get(2), "absent xcom");
            eq(List.of("SetXCom", "GetXCom", "GetXCom", "GetXCom", "GetXCom", "DeleteXCom", "MaskSecret", "SucceedTask"), w.types(), "requests");
            eq(map("type", "GetXCom", "key", "value", "dag_id", "etl", "run_id", "r1", "task_id", "upstream"), w.messages().get(2), "GetXCom");
            eq(map("type", "GetXCom", "key", "value", "dag_id", "otherdag", "run_id", "run9", "task_id", "upstream"), w.messages().get(4),
                    "GetXCom of another run");
            eq(map("type", "DeleteXCom", "key", "mine", "dag_id", "etl", "run_id", "r1", "task_id", "t", "map_index", -1),
                    w.messages().get(5), "DeleteXCom");
            eq(map("type", "MaskSecret", "value", "hunter2", "name", "pw"), w.messages().get(6), "MaskSecret");
            for (int i = 0; i < w.requests.size(); i++) {
                eq((long) i + 1, w.requests.get(i).id(), "request ids count from 1");
            }
        }
    }

    @Test
    void testLogLines() throws Exception {
        try (FakeWorker w = new FakeWorker()) {
            run(one("t", ctx -> {
                ctx.log().info("hello <world>", "rows", 12, "ratio", 0.5, "tags", List.of("a"), "event", "shadow", "odd");
                ctx.log().debug("hidden at info");
                ctx.log().warn("careful", "obj", new Object() {
                    @Override
                    public String toString() {
                        return "custom";
                    }
                });
                ctx.log().named("etl.extract").error("bad", new IllegalArgumentException("nope"));
                return null;
            }), w);
            List<Map<String, Object>> recs = w.logRecords();
            eq(3, recs.size(), "log lines: " + w.logs());
            Map<String, Object> r = recs.get(0);
            eq(List.of("timestamp", "level", "event", "logger", "rows", "ratio", "tags", "event_", "!BADKEY"),
                    new ArrayList<>(r.keySet()), "fields in order");
            eq("info", r.get("level"), "level");
            eq("hello <world>", r.get("event"), "event");
            eq("task", r.get("logger"), "logger");
            eq(12L, r.get("rows"), "rows");
            eq(0.5, r.get("ratio"), "ratio");
            eq(List.of("a"), r.get("tags"), "tags");
            eq("shadow", r.get("event_"), "renamed reserved key");
            eq("odd", r.get("!BADKEY"), "value without a key");
            String ts = (String) r.get("timestamp");
            isTrue(ts.matches("\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d(\\.\\d*[1-9])?Z"), "RFC 3339 UTC timestamp " + ts);
            eq("warning", recs.get(1).get("level"), "warn level");
            eq("custom", recs.get(1).get("obj"), "toString of a value that is not JSON");
            Map<String, Object> e = recs.get(2);
            eq("error", e.get("level"), "error level");
            eq("etl.extract", e.get("logger"), "named logger");
            eq("java.lang.IllegalArgumentException: nope", e.get("error"), "error");
            contains((String) e.get("stack"), "at io.taskwire.sdk.RuntimeTests", "stack");
        }
    }

    @Test
    void testDebugLevel() throws Exception {
        try (FakeWorker w = new FakeWorker()) {
            run(one("t", ctx -> {
                ctx.log().debug("shown at debug");
                return null;
            }).logLevel(TaskLogger.Level.DEBUG), w);
            contains(w.logs(), "\"level\":\"debug\",\"event\":\"shown at debug\"", "debug line");
        }
    }

    @Test
    void testExceptionRetriesWithStackInLogs() throws Exception {
        try (FakeWorker w = new FakeWorker()) {
            run(one("t", ctx -> {
                throw new IllegalStateException("failing on purpose");
            }), w);
            Map<String, Object> t = w.terminal();
            eq("RetryTask", Protocol.type(t), "terminal");
            eq("java.lang.IllegalStateException: failing on purpose", t.get("reason"), "reason");
            isTrue(t.get("end_date") instanceof String, "end_date");
            Map<String, Object> rec = w.logRecords().get(0);
            eq("error", rec.get("level"), "level");
            eq("taskwire.sdk", rec.get("logger"), "logger");
            contains((String) rec.get("stack"), "java.lang.IllegalStateException: failing on purpose\n\tat io.taskwire.sdk.RuntimeTests", "stack");
            eq("t", rec.get("task_id"), "task_id");
        }
    }

    @Test
    void testCheckedExceptionAndErrorRetry() throws Exception {
        try (FakeWorker w = new FakeWorker()) {
            run(one("t", ctx -> {
                throw new IOException("disk on fire");
            }), w);
            eq("java.io.IOException: disk on fire", w.terminal().get("reason"), "checked exception");
        }
        try (FakeWorker w = new FakeWorker()) {
            run(one("t", ctx -> {
                throw new StackOverflowError();
            }), w);
            eq("RetryTask", Protocol.type(w.terminal()), "an Error retries too");
        }
    }

    @Test
    void testFailAndSkip() throws Exception {
        try (FakeWorker w = new FakeWorker()) {
            run(one("t", ctx -> {
                throw new Fail("bad input");
            }), w);
            eq(map("type", "TaskState", "state", "failed", "end_date", w.terminal().get("end_date"), "reason", "bad input"), w.terminal(), "failed");
        }
        try (FakeWorker w = new FakeWorker()) {
            run(one("t", ctx -> {
                throw new Fail(new IllegalArgumentException("inner"));
            }), w);
            eq("java.lang.IllegalArgumentException: inner", w.terminal().get("reason"), "fail with a cause");
            contains(w.logs(), "inner", "cause logged");
        }
        try (FakeWorker w = new FakeWorker()) {
            run(one("t", ctx -> {
                throw new Skip("no new partitions");
            }), w);
            eq("TaskState", Protocol.type(w.terminal()), "type");
            eq("skipped", w.terminal().get("state"), "skipped");
            eq("no new partitions", w.terminal().get("reason"), "reason");
        }
    }

    @Test
    void testDefer() throws Exception {
        AtomicBoolean after = new AtomicBoolean();
        try (FakeWorker w = new FakeWorker()) {
            run(one("t", ctx -> {
                ctx.defer("timedelta", map("delta", 1.0), "resume", map("deferred_at", "x"), Duration.ofSeconds(90));
                after.set(true);
                return "ignored";
            }), w);
            eq(map("type", "DeferTask", "classpath", "timedelta", "trigger_kwargs", map("delta", 1L), "trigger_timeout", "1m30s",
                    "next_method", "resume", "next_kwargs", map("deferred_at", "x")), w.terminal(), "DeferTask");
            isTrue(!after.get(), "code after defer did not run");
            eq(List.of("DeferTask"), w.types(), "nothing after DeferTask");
            contains(new String(Protocol.encodeRequest(1, w.terminal()), StandardCharsets.UTF_8), "\"trigger_kwargs\":{\"delta\":1}", "float 1 written as Go does");
        }
        try (FakeWorker w = new FakeWorker()) {
            run(one("t", ctx -> {
                throw ctx.defer("event", null, "go_on");
            }), w);
            eq(map("type", "DeferTask", "classpath", "event", "next_method", "go_on"), w.terminal(), "minimal DeferTask");
        }
    }

    @Test
    void testDeferSwallowedIsStillDeferred() throws Exception {
        try (FakeWorker w = new FakeWorker()) {
            run(one("t", ctx -> {
                try {
                    ctx.defer("event", Map.of("name", "go"), "resume");
                } catch (TaskDeferred d) {
                    eq("resume", d.nextMethod(), "next method");
                }
                fails(IllegalStateException.class, "deferred already", () -> ctx.defer("event", null, "again"), "defer twice");
                return 7;
            }), w);
            eq(List.of("DeferTask"), w.types(), "only DeferTask");
            contains(w.logs(), "task deferred, then returned", "warned");
        }
    }

    @Test
    void testDeferRejectedRetries() throws Exception {
        try (FakeWorker w = new FakeWorker()) {
            w.errors.put("DeferTask", Protocol.errorResponse("bad_request", Map.of("message", "unknown trigger")));
            run(one("t", ctx -> ctx.defer("nope", null, "resume")), w);
            eq(List.of("DeferTask", "RetryTask"), w.types(), "requests");
            eq("io.taskwire.sdk.TaskwireApiException: bad_request: unknown trigger", w.terminal().get("reason"), "reason");
        }
    }

    @Test
    void testDeferArguments() throws Exception {
        try (FakeWorker w = new FakeWorker()) {
            run(one("t", ctx -> {
                fails(IllegalArgumentException.class, "reserved", () -> ctx.defer("x", null, "__fail__"), "reserved method");
                fails(IllegalArgumentException.class, "negative", () -> ctx.defer("x", null, "m", null, Duration.ofSeconds(-1)), "negative");
                fails(IllegalArgumentException.class, "needs a trigger", () -> ctx.defer("", null, "m"), "no trigger");
                return null;
            }), w);
            eq(List.of("SucceedTask"), w.types(), "nothing sent");
        }
    }

    @Test
    void testResumeIntoRegisteredMethod() throws Exception {
        AtomicReference<Object[]> got = new AtomicReference<>();
        Map<String, Object> event = map("fired_at", "2026-11-22T08:00:01Z", "n", 3);
        try (FakeWorker w = new FakeWorker()) {
            w.nextMethod = "resume";
            w.nextKwargs = map("deferred_at", "2026-11-22T08:00:00Z", "event", event);
            TaskRuntime rt = new TaskRuntime()
                    .register("t", ctx -> {
                        throw new AssertionError("the main entry ran");
                    })
                    .registerMethod("t", "resume", ctx -> {
                        got.set(new Object[] {ctx.nextMethod(), ctx.isResumed(), ctx.nextKwargs().get("deferred_at")});
                        return ctx.event();
                    });
            run(rt, w);
            eq("resume", got.get()[0], "next method");
            eq(true, got.get()[1], "resumed");
            eq("2026-11-22T08:00:00Z", got.get()[2], "next kwargs");
            eq(List.of("SetXCom", "SucceedTask"), w.types(), "requests");
            eq(event, w.messages().get(0).get("value"), "event returned as return_value");
        }
    }

    @Test
    void testResumeFallsBackToMainEntry() throws Exception {
        try (FakeWorker w = new FakeWorker()) {
            w.nextMethod = "later";
            w.nextKwargs = map("event", "ping");
            run(one("t", ctx -> ctx.nextMethod() + ":" + ctx.event()), w);
            eq("later:ping", w.messages().get(0).get("value"), "main entry saw the resume");
        }
    }

    @Test
    void testFailMethodRetriesWithoutUserCode() throws Exception {
        AtomicBoolean ran = new AtomicBoolean();
        try (FakeWorker w = new FakeWorker()) {
            w.nextMethod = "__fail__";
            w.nextKwargs = map("error", "trigger timeout after 2s");
            run(one("t", ctx -> {
                ran.set(true);
                return null;
            }), w);
            isTrue(!ran.get(), "no user code ran");
            eq(List.of("RetryTask"), w.types(), "requests");
            eq("trigger timeout after 2s", w.terminal().get("reason"), "reason");
            contains(w.logs(), "resumed after the trigger failed", "logged");
        }
        try (FakeWorker w = new FakeWorker()) {
            w.nextMethod = "__fail__";
            run(one("t", ctx -> null), w);
            eq("trigger failed", w.terminal().get("reason"), "default reason");
        }
        fails(IllegalArgumentException.class, "reserved", () -> new TaskRuntime().registerMethod("t", "__fail__", ctx -> null), "register __fail__");
    }

    @Test
    void testUnknownTaskFails() throws Exception {
        try (FakeWorker w = new FakeWorker()) {
            w.task = "nope";
            w.entrypoint = "nope";
            run(one("t", ctx -> null), w);
            eq("failed", w.terminal().get("state"), "failed");
            eq("no task \"nope\" in this runtime", w.terminal().get("reason"), "reason");
        }
        try (FakeWorker w = new FakeWorker()) {
            w.nextMethod = "resume";
            run(new TaskRuntime().register("other", ctx -> null), w);
            eq("no method \"resume\" for task \"t\" in this runtime", w.terminal().get("reason"), "reason");
        }
    }

    @Test
    void testEntrypointSelection() throws Exception {
        TaskRuntime rt = new TaskRuntime().register("by_entry", ctx -> "entry:" + ctx.taskName()).register("by_id", ctx -> "id:" + ctx.taskName());
        try (FakeWorker w = new FakeWorker()) {
            w.task = "by_id";
            w.entrypoint = "by_entry";
            run(rt, w);
            eq("entry:by_entry", w.messages().get(0).get("value"), "entrypoint wins");
            eq("by_id", w.messages().get(0).get("task_id"), "xcom of the task id");
        }
        try (FakeWorker w = new FakeWorker()) {
            w.task = "by_id";
            w.entrypoint = "";
            run(rt, w);
            eq("id:by_id", w.messages().get(0).get("value"), "task id without entrypoint");
        }
    }

    @Test
    void testContextAccessors() throws Exception {
        AtomicReference<TaskContext> got = new AtomicReference<>();
        try (FakeWorker w = new FakeWorker()) {
            w.params = map("seconds", 2.5, "name", "x");
            run(one("t", ctx -> {
                got.set(ctx);
                return null;
            }), w);
        }
        TaskContext c = got.get();
        eq(new TaskInstance("ti-1", "etl", "t", "r1", -1, 1), c.ti(), "ti");
        eq(2, c.maxTries(), "max tries");
        eq("java", c.queue(), "queue");
        eq("2026-11-22T08:15:30Z", c.startDate(), "start date");
        eq(map("seconds", 2.5, "name", "x"), c.params(), "params");
        eq("", c.nextMethod(), "no next method");
        eq(false, c.isResumed(), "not resumed");
        eq(Map.of(), c.nextKwargs(), "no next kwargs");
        eq(null, c.event(), "no event");
        fails(UnsupportedOperationException.class, null, () -> c.params().put("x", 1), "params are read-only");
        fails(TaskwireException.class, "try is over", () -> c.variable("x"), "requests after the end");
    }

    @Test
    void testConcurrentRequests() throws Exception {
        try (FakeWorker w = new FakeWorker()) {
            w.variables.put("v", "1");
            run(one("t", ctx -> {
                List<Thread> ts = new ArrayList<>();
                List<Throwable> errs = java.util.Collections.synchronizedList(new ArrayList<>());
                for (int i = 0; i < 8; i++) {
                    int n = i;
                    Thread t = new Thread(() -> {
                        try {
                            for (int j = 0; j < 20; j++) {
                                eq("1", ctx.variable("v"), "variable");
                                ctx.xcomPush("k" + n, j);
                            }
                        } catch (Throwable e) {
                            errs.add(e);
                        }
                    });
                    ts.add(t);
                    t.start();
                }
                for (Thread t : ts) {
                    t.join();
                }
                if (!errs.isEmpty()) {
                    throw new AssertionError(errs.get(0));
                }
                return null;
            }), w);
            eq(8 * 40 + 1, w.requests.size(), "requests");
            eq("SucceedTask", Protocol.type(w.terminal()), "terminal");
        }
    }

    @Test
    void testUnixSockets() throws Exception {
        try (FakeWorker w = new FakeWorker(true)) {
            isTrue(w.commAddr().startsWith("/"), "unix address " + w.commAddr());
            w.variables.put("greeting", "hi");
            run(one("t", ctx -> {
                ctx.log().info("over unix");
                return ctx.variable("greeting");
            }), w);
            eq("hi", w.messages().get(1).get("value"), "return value");
            contains(w.logs(), "over unix", "log line");
        }
    }

    @SuppressWarnings("try")
    @Test
    void testLogsFallBackToStderr() throws Exception {
        PrintStream old = System.err;
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        try (FakeWorker w = new FakeWorker(); FakeWorker dead = new FakeWorker()) {
            String deadAddr = dead.logsAddr();
            dead.close(); // nothing listens there now
            System.setErr(new PrintStream(buf, true, StandardCharsets.UTF_8));
            try {
                w.start();
                one("t", ctx -> {
                    ctx.log().info("to stderr");
                    return null;
                }).run(w.commAddr(), deadAddr);
            } finally {
                System.setErr(old);
            }
            w.close(); // the logs listener had no client
            eq("SucceedTask", Protocol.type(w.terminal()), "terminal");
        }
        String err = buf.toString(StandardCharsets.UTF_8);
        contains(err, "taskwire sdk: logs to stderr", "note");
        contains(err, "\"event\":\"to stderr\"", "line on stderr");
    }

    @Test
    void testBadFirstFrame() throws Exception {
        try (FakeWorker w = new FakeWorker()) {
            w.firstFrame = Protocol.encodeResponse(1, Protocol.okResponse(), null);
            w.start();
            fails(ProtocolException.class, "first frame from the worker is OKResponse with id 1", () -> one("t", ctx -> null).run(w.commAddr(), w.logsAddr()), "bad first frame");
        }
        try (FakeWorker w = new FakeWorker()) {
            w.firstFrame = "[0,{\"type\":\"StartupDetails\",\"ti\":{\"map_index\":\"x\"}},null]".getBytes(StandardCharsets.UTF_8);
            w.start();
            fails(ProtocolException.class, "StartupDetails.ti.map_index is a string", () -> one("t", ctx -> null).run(w.commAddr(), w.logsAddr()), "bad field");
        }
        try (FakeWorker w = new FakeWorker()) {
            w.firstFrame = "not json".getBytes(StandardCharsets.UTF_8);
            w.start();
            fails(ProtocolException.class, "malformed response", () -> one("t", ctx -> null).run(w.commAddr(), w.logsAddr()), "not json");
        }
    }

    @Test
    void testConnectFailure() {
        fails(IOException.class, "connect to 127.0.0.1:1", () -> new TaskRuntime().run("127.0.0.1:1", null), "refused");
        fails(IOException.class, "want HOST:PORT", () -> new TaskRuntime().run("nonsense", null), "bad address");
        fails(IOException.class, "connect to /nonexistent/comm.sock", () -> new TaskRuntime().run("/nonexistent/comm.sock", null), "no socket");
    }

    @Test
    void testMainArguments() throws Exception {
        Map<String, String> env = new HashMap<>();
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        PrintStream err = new PrintStream(buf, true, StandardCharsets.UTF_8);
        TaskRuntime rt = one("t", ctx -> null);
        eq(2, rt.execute(new String[] {}, env, err), "no comm");
        contains(buf.toString(StandardCharsets.UTF_8), "no comm address", "message");
        eq(2, rt.execute(new String[] {"--comm", "x:1", "--codec", "msgpack"}, env, err), "msgpack");
        contains(buf.toString(StandardCharsets.UTF_8), "only the json codec", "message");
        env.put("TASKWIRE_CODEC", "msgpack");
        eq(2, rt.execute(new String[] {"--comm=x:1"}, env, err), "msgpack from env");
        eq(2, rt.execute(new String[] {"--comm", "x:1", "--bogus", "1"}, env, err), "unknown flag");
        eq(2, rt.execute(new String[] {"--comm"}, env, err), "missing value");
        eq(0, rt.execute(new String[] {"-h"}, env, err), "help");
        eq(1, rt.execute(new String[] {"--comm", "127.0.0.1:1", "--codec=json"}, env, err), "unreachable worker");
        try (FakeWorker w = new FakeWorker()) {
            w.start();
            env.put("TASKWIRE_CODEC", "json");
            env.put("TASKWIRE_COMM_ADDR", w.commAddr());
            env.put("TASKWIRE_LOGS_ADDR", w.logsAddr());
            eq(0, rt.execute(new String[] {}, env, err), "addresses from the environment");
            w.await();
            eq("SucceedTask", Protocol.type(w.terminal()), "terminal");
        }
        try (FakeWorker w = new FakeWorker()) {
            w.start();
            eq(0, rt.execute(new String[] {"-comm", w.commAddr(), "-logs=" + w.logsAddr()}, new HashMap<>(), err), "single-dash flags");
            w.await();
        }
    }

    @Test
    void testWorkerGoneMidTask() throws Exception {
        AtomicReference<Throwable> got = new AtomicReference<>();
        try (FakeWorker w = new FakeWorker()) {
            w.firstFrame = Protocol.encodeResponse(0, Protocol.startupDetails(w.ti(), 1, "q", "t", null, null, null, "s"), null);
            // Answer nothing: accept, send StartupDetails, then close.
            java.nio.channels.ServerSocketChannel ss = java.nio.channels.ServerSocketChannel.open()
                    .bind(new java.net.InetSocketAddress(java.net.InetAddress.getLoopbackAddress(), 0));
            String addr = "127.0.0.1:" + ((java.net.InetSocketAddress) ss.getLocalAddress()).getPort();
            Thread t = new Thread(() -> {
                try (java.nio.channels.SocketChannel c = ss.accept()) {
                    new FrameConn(c).writeFrame(w.firstFrame);
                } catch (IOException e) {
                    got.compareAndSet(null, e);
                }
            });
            t.start();
            fails(IOException.class, "report RetryTask", () -> one("t", ctx -> {
                try {
                    ctx.variable("x");
                } catch (TaskwireException e) {
                    got.set(e);
                    throw e;
                }
                return null;
            }).run(addr, null), "worker gone");
            t.join();
            ss.close();
            isTrue(got.get() instanceof TaskwireException, "task saw " + got.get());
            contains(got.get().getMessage(), "connection to the worker lost", "message");
        }
    }

    @Test
    void testReasonTruncated() throws Exception {
        try (FakeWorker w = new FakeWorker()) {
            run(one("t", ctx -> {
                throw new Fail("x".repeat(100_000));
            }), w);
            String reason = (String) w.terminal().get("reason");
            isTrue(reason.length() < 17_000 && reason.endsWith("[truncated]"), "reason of " + reason.length());
        }
        try (FakeWorker w = new FakeWorker()) {
            run(one("t", ctx -> {
                ctx.log().info("big", "blob", "y".repeat(100_000), "more", "z".repeat(50_000), "list", List.of("w".repeat(30_000)));
                return null;
            }), w);
            for (String line : w.logLines) {
                isTrue(line.getBytes(StandardCharsets.UTF_8).length < 64 << 10, "line of " + line.length());
            }
            contains(w.logs(), "truncated", "marked");
        }
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("k", "v");
        eq("{\"k\":\"v\"}", Json.write(m), "sanity");
    }
}
