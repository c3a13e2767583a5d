package io.taskwire.sdk;

import java.io.EOFException;
import java.io.IOException;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.SocketChannel;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.time.Instant;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.LinkedBlockingQueue;

/**
 * Runs registered tasks for a worker: the Java task runtime.
 *
 * <pre>{@code
 * public static void main(String[] args) {
 *     TaskRuntime rt = new TaskRuntime();
 *     rt.register("extract", ctx -> List.of(1, 2, 3));
 *     rt.register("wait", ctx -> ctx.defer("timedelta", Map.of("delta", 30), "resume"));
 *     rt.registerMethod("wait", "resume", ctx -> ctx.event());
 *     rt.main(args);
 * }
 * }</pre>
 *
 * <p>The worker starts the runtime per task try with the addresses it listens
 * on: {@code --comm ADDR --logs ADDR} (or TASKWIRE_COMM_ADDR and
 * TASKWIRE_LOGS_ADDR), each HOST:PORT (TCP) or an absolute path (a unix
 * socket). The runtime speaks the JSON codec only: configure the queue's
 * runtime with {@code codec: json}. It connects, reads StartupDetails, runs
 * the task it names (the entrypoint, else the task id) and reports how the
 * try ended with one terminal message (see {@link Task}). A resumed task
 * (next_method set) runs the method registered for it, else its main entry;
 * one resumed with "__fail__" runs nothing and asks for a retry with the
 * trigger's error.
 */
public final class TaskRuntime {
    public static final String ENV_COMM_ADDR = "TASKWIRE_COMM_ADDR";
    public static final String ENV_LOGS_ADDR = "TASKWIRE_LOGS_ADDR";
    public static final String ENV_CODEC = "TASKWIRE_CODEC";
    /**
     * The runtime's secret, which it presents first on every comm and logs
     * connection (Go's protocol.EnvCommSecret): the worker takes no
     * connection that does not, so another local process that connects
     * first gets nothing. The worker passes it in the environment only.
     */
    public static final String ENV_COMM_SECRET = "TASKWIRE_COMM_SECRET";
    /**
     * Set by the worker in warm mode: the number of tries one process runs
     * at once (see {@link #runWarm}).
     */
    public static final String ENV_WARM_TASKS = "TASKWIRE_WARM_TASKS";

    /** Bound on connecting to the worker, in milliseconds. */
    public static final int DIAL_TIMEOUT_MILLIS = 10_000;

    /** Bound on the reason sent with a terminal message, in characters. */
    static final int MAX_REASON = 16 << 10;

    private static final String TRIGGER_FAILED_DEFAULT = "trigger failed";

    private final Map<String, Task> tasks = new ConcurrentHashMap<>();
    private volatile String secret; // null: TASKWIRE_COMM_SECRET's
    private final Map<String, Task> methods = new ConcurrentHashMap<>(); // task + "\0" + method
    private volatile TaskLogger.Level logLevel = TaskLogger.Level.INFO;

    /**
     * Makes task the code of task taskId. It throws IllegalArgumentException
     * when taskId is empty, task is null or taskId is registered already.
     */
    public TaskRuntime register(String taskId, Task task) {
        if (taskId == null || taskId.isEmpty() || task == null) {
            throw new IllegalArgumentException("register needs a task id and a task");
        }
        if (tasks.putIfAbsent(taskId, task) != null) {
            throw new IllegalArgumentException("task " + taskId + " registered twice");
        }
        return this;
    }

    /**
     * Makes task the code that task taskId resumes at when a trigger it
     * deferred on fires with next_method method (see {@link TaskContext#defer}).
     * A resumed task without a method of that name runs its registered main
     * entry, which can branch on {@link TaskContext#nextMethod()}.
     */
    public TaskRuntime registerMethod(String taskId, String method, Task task) {
        if (taskId == null || taskId.isEmpty() || method == null || method.isEmpty() || task == null) {
            throw new IllegalArgumentException("registerMethod needs a task id, a method and a task");
        }
        if (Protocol.FAIL_METHOD.equals(method)) {
            throw new IllegalArgumentException("method " + Protocol.FAIL_METHOD + " is reserved");
        }
        if (methods.putIfAbsent(taskId + "\0" + method, task) != null) {
            throw new IllegalArgumentException("method " + method + " of task " + taskId + " registered twice");
        }
        return this;
    }

    /** Sets the lowest level the loggers write (INFO by default). */
    public TaskRuntime logLevel(TaskLogger.Level level) {
        this.logLevel = level;
        return this;
    }

    /**
     * Sets the secret the runtime presents to the worker; by default the
     * value of TASKWIRE_COMM_SECRET, which the worker sets.
     */
    public TaskRuntime secret(String secret) {
        this.secret = secret;
        return this;
    }

    /** The secret the runtime presents to the worker. */
    String secret() {
        String s = secret;
        if (s == null) {
            s = System.getenv(ENV_COMM_SECRET);
        }
        return s == null ? "" : s;
    }

    /** Opens a comm connection and presents the secret (the auth frame) on it. */
    private SocketChannel connectComm(String addr) throws IOException {
        SocketChannel ch = connect(addr);
        try {
            new FrameConn(ch).writeFrame(Protocol.authBody(secret()));
        } catch (IOException | RuntimeException e) {
            ch.close();
            throw e;
        }
        return ch;
    }

    /**
     * Runs the task the worker asks for and exits the process: 0 once the
     * outcome was reported, 1 when it could not be, 2 on bad arguments.
     * Arguments: {@code --comm ADDR}, {@code --logs ADDR}, {@code --codec json}
     * (also as {@code -comm}, {@code --comm=ADDR}); the environment
     * variables TASKWIRE_COMM_ADDR, TASKWIRE_LOGS_ADDR and TASKWIRE_CODEC
     * stand in for missing flags.
     */
    public void main(String[] args) {
        int code = execute(args, System.getenv(), System.err);
        System.err.flush();
        System.exit(code);
    }

    /** What {@link #main} does, returning the exit code instead of exiting. */
    int execute(String[] args, Map<String, String> env, PrintStream err) {
        String comm = env.getOrDefault(ENV_COMM_ADDR, "");
        String logs = env.getOrDefault(ENV_LOGS_ADDR, "");
        String codec = env.getOrDefault(ENV_CODEC, "");
        if (secret == null && env.containsKey(ENV_COMM_SECRET)) {
            secret = env.get(ENV_COMM_SECRET);
        }
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals("-h") || a.equals("-help") || a.equals("--help")) {
                usage(err);
                return 0;
            }
            String name = a.startsWith("--") ? a.substring(2) : a.startsWith("-") ? a.substring(1) : null;
            if (name == null) {
                err.println("taskwire sdk: unexpected argument " + a);
                usage(err);
                return 2;
            }
            String value = null;
            int eq = name.indexOf('=');
            if (eq >= 0) {
                value = name.substring(eq + 1);
                name = name.substring(0, eq);
            }
            if (!name.equals("comm") && !name.equals("logs") && !name.equals("codec")) {
                err.println("taskwire sdk: unknown flag " + a);
                usage(err);
                return 2;
            }
            if (value == null) {
                if (i + 1 >= args.length) {
                    err.println("taskwire sdk: flag needs an argument: " + a);
                    return 2;
                }
                value = args[++i];
            }
            switch (name) {
                case "comm": comm = value; break;
                case "logs": logs = value; break;
                default: codec = value; break;
            }
        }
        if (!codec.isEmpty() && !codec.equals("json")) {
            if (codec.equals("msgpack")) {
                err.println("taskwire sdk: the Java SDK speaks only the json codec, not msgpack: configure the queue's runtime with codec: json");
            } else {
                err.println("taskwire sdk: unknown codec \"" + codec + "\": want json");
            }
            return 2;
        }
        if (comm.isEmpty()) {
            err.println("taskwire sdk: no comm address: pass --comm or set " + ENV_COMM_ADDR);
            return 2;
        }
        String warm = env.getOrDefault(ENV_WARM_TASKS, "");
        try {
            if (!warm.isEmpty()) {
                int slots;
                try {
                    slots = Integer.parseInt(warm);
                } catch (NumberFormatException e) {
                    err.println("taskwire sdk: " + ENV_WARM_TASKS + "=\"" + warm + "\": want a number of task slots");
                    return 2;
                }
                runWarm(comm, logs, slots);
                return 0;
            }
            run(comm, logs);
            return 0;
        } catch (Exception | Error e) {
            err.println("taskwire sdk: " + e);
            return 1;
        }
    }

    private static void usage(PrintStream err) {
        err.println("usage: java -cp CLASSPATH MAIN --comm ADDR [--logs ADDR] [--codec json]");
        err.println("  ADDR is HOST:PORT or the absolute path of a unix socket; the environment variables");
        err.println("  " + ENV_COMM_ADDR + ", " + ENV_LOGS_ADDR + " and " + ENV_CODEC + " stand in for missing flags.");
    }

    /**
     * Connects to the worker at commAddr (requests) and logsAddr (log lines;
     * null, "" or unreachable means standard error), serves one task try (see
     * {@link #serveOne}) and closes the connections. It returns once the worker
     * has acknowledged the try's terminal message, whatever the outcome, and
     * throws when no outcome could be reported.
     */
    public void run(String commAddr, String logsAddr) throws IOException {
        LogSink logs = LogSink.stderr();
        if (logsAddr != null && !logsAddr.isEmpty()) {
            try {
                logs = new LogSink(connect(logsAddr), System.err);
                logs.writeLine(Protocol.logHeader(secret(), null, 0, false));
            } catch (IOException e) {
                System.err.println("taskwire sdk: logs to stderr: " + e);
            }
        }
        try (SocketChannel ch = connectComm(commAddr)) {
            serveOne(new FrameConn(ch), logs);
        } finally {
            logs.close();
        }
    }

    /**
     * Serves tries as a warm runtime (the worker's warm mode) until the
     * worker stops taking connections: slots threads each keep a comm
     * connection open to the worker at commAddr, wait on it for a try's
     * StartupDetails, run the try on that thread exactly as {@link #run}
     * does, and connect again for the next one. Every try's log lines go on
     * the process's one connection to logsAddr (header {@code {"mux":true,"secret":…}}),
     * each prefixed {@code ti_id TAB try_number TAB}; a try's empty line,
     * sent before its outcome, ends them. The worker cancels a try by
     * half-closing its connection: its {@link TaskContext#isCancelled} turns
     * true and its thread is interrupted. The tries share the JVM: heap,
     * static fields, system properties.
     */
    public void runWarm(String commAddr, String logsAddr, int slots) throws InterruptedException {
        if (slots < 1) {
            throw new IllegalArgumentException("warm runtime: " + slots + " slots, want at least 1");
        }
        LogSink mux = null;
        if (logsAddr != null && !logsAddr.isEmpty()) {
            try {
                mux = new LogSink(connect(logsAddr), System.err);
                mux.writeLine(Protocol.logHeader(secret(), null, 0, true));
            } catch (IOException e) {
                System.err.println("taskwire sdk: logs to stderr: " + e);
                mux = null;
            }
        }
        LogSink logs = mux;
        Thread[] threads = new Thread[slots];
        for (int i = 0; i < slots; i++) {
            int n = i;
            threads[i] = new Thread(() -> warmSlot(n, commAddr, logs), "taskwire-slot-" + i);
            threads[i].start();
        }
        try {
            for (Thread t : threads) {
                t.join();
            }
        } finally {
            if (mux != null) {
                mux.close();
            }
        }
    }

    /** One slot's tries, until the worker stops taking its connections. */
    private void warmSlot(int n, String commAddr, LogSink mux) {
        while (true) {
            SocketChannel ch;
            try {
                ch = connectComm(commAddr);
            } catch (IOException e) {
                return; // the worker retired the process, or is gone
            }
            try {
                serveWarm(ch, mux);
            } catch (IOException | TaskwireException e) {
                System.err.println("taskwire sdk: warm slot " + n + ": " + e.getMessage());
            } finally {
                try {
                    ch.close();
                } catch (IOException ignored) {
                    // closed
                }
                Thread.interrupted(); // a cancel that came late is not the next try's
            }
        }
    }

    /** One try on a warm slot's connection ch. */
    private void serveWarm(SocketChannel ch, LogSink mux) throws IOException {
        FrameConn conn = new FrameConn(ch);
        byte[] first = conn.readFrame();
        if (first == null) {
            return; // the worker retired the slot before giving it a try
        }
        Protocol.Response resp = Protocol.decodeResponse(first);
        if (resp.id() != 0 || !Protocol.STARTUP_DETAILS.equals(Protocol.type(resp.msg()))) {
            throw new ProtocolException("first frame from the worker is " + Protocol.type(resp.msg()) + " with id " + resp.id()
                    + ", want StartupDetails with id 0");
        }
        StartupDetails sd = StartupDetails.parse(resp.msg());
        LogSink logs = mux == null ? LogSink.stderr() : mux.forTry(sd.ti());
        BlockingQueue<Object> inbox = new LinkedBlockingQueue<>();
        Client client = new Client(conn, inbox);
        TaskContext ctx = new TaskContext(sd, client, new TaskLogger(logs, "task", logLevel));
        Thread task = Thread.currentThread();
        Object lock = new Object();
        boolean[] over = {false};
        Thread reader = new Thread(() -> {
            IOException end;
            try {
                while (true) {
                    byte[] f = conn.readFrame();
                    if (f == null) {
                        end = new EOFException("the worker closed the connection");
                        break;
                    }
                    inbox.add(f);
                }
            } catch (IOException e) {
                end = e;
            }
            inbox.add(end);
            synchronized (lock) {
                if (!over[0]) {
                    // The worker half-closed the connection: cancel the try.
                    ctx.cancel();
                    task.interrupt();
                }
            }
        }, "taskwire-reader-" + sd.ti().id());
        reader.setDaemon(true);
        reader.start();
        Map<String, Object> terminal;
        try {
            terminal = runTry(sd, ctx, logs);
        } finally {
            logs.close();
        }
        try {
            if (terminal != null) {
                client.call(terminal);
            }
        } catch (TaskwireException e) {
            if (!ctx.isCancelled()) {
                throw new IOException("report " + Protocol.type(terminal) + ": " + e.getMessage(), e);
            }
        } finally {
            client.close();
            synchronized (lock) {
                over[0] = true;
            }
            Thread.interrupted();
            ch.close();
            try {
                reader.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    /**
     * The first line (without its newline) of try ti's log stream in a warm
     * runtime: Go's protocol.LogStreamHeader, golden vector
     * protocol/testdata/log_stream_header.jsonl.
     */
    static String logStreamHeader(TaskInstance ti, String secret) {
        return Protocol.logHeader(secret, ti.id(), ti.tryNumber(), false);
    }

    /** Opens a blocking channel to addr: an absolute path (unix socket) or HOST:PORT. */
    static SocketChannel connect(String addr) throws IOException {
        if (isUnix(addr)) {
            SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX);
            try {
                ch.connect(UnixDomainSocketAddress.of(addr));
            } catch (IOException | RuntimeException e) {
                ch.close();
                throw new IOException("connect to " + addr + ": " + e.getMessage(), e);
            }
            return ch;
        }
        int colon = addr.lastIndexOf(':');
        if (colon <= 0 || colon == addr.length() - 1) {
            throw new IOException("address " + addr + ": want HOST:PORT or an absolute socket path");
        }
        String host = addr.substring(0, colon);
        if (host.startsWith("[") && host.endsWith("]")) {
            host = host.substring(1, host.length() - 1);
        }
        int port;
        try {
            port = Integer.parseInt(addr.substring(colon + 1));
        } catch (NumberFormatException e) {
            throw new IOException("address " + addr + ": bad port", e);
        }
        SocketChannel ch = SocketChannel.open();
        try {
            ch.socket().connect(new InetSocketAddress(host, port), DIAL_TIMEOUT_MILLIS);
            ch.socket().setTcpNoDelay(true);
        } catch (IOException | RuntimeException e) {
            ch.close();
            throw new IOException("connect to " + addr + ": " + e.getMessage(), e);
        }
        return ch;
    }

    /** Whether addr names a unix socket: an absolute filesystem path. */
    static boolean isUnix(String addr) {
        try {
            return Path.of(addr).isAbsolute();
        } catch (InvalidPathException e) {
            return false;
        }
    }

    /**
     * Serves one task try on conn: reads StartupDetails (id 0), runs the
     * task it names and reports the outcome, returning once the worker has
     * answered the terminal message. Requests are numbered from 1. A warm
     * runtime could call it again for the next StartupDetails on the same
     * connection. Log lines go to standard error.
     */
    public void serveOne(FrameConn conn) throws IOException {
        serveOne(conn, LogSink.stderr());
    }

    /** {@link #serveOne(FrameConn)}, writing log lines to logs. */
    void serveOne(FrameConn conn, LogSink logs) throws IOException {
        byte[] first = conn.readFrame();
        if (first == null) {
            throw new EOFException("the worker closed the connection before StartupDetails");
        }
        Protocol.Response resp = Protocol.decodeResponse(first);
        if (resp.id() != 0 || !Protocol.STARTUP_DETAILS.equals(Protocol.type(resp.msg()))) {
            throw new ProtocolException("first frame from the worker is " + Protocol.type(resp.msg()) + " with id " + resp.id()
                    + ", want StartupDetails with id 0");
        }
        StartupDetails sd = StartupDetails.parse(resp.msg());
        Client client = new Client(conn);
        TaskContext ctx = new TaskContext(sd, client, new TaskLogger(logs, "task", logLevel));
        Map<String, Object> terminal = runTry(sd, ctx, logs);
        try {
            if (terminal != null) { // else DeferTask was the terminal message
                client.call(terminal);
            }
        } catch (TaskwireException e) {
            throw new IOException("report " + Protocol.type(terminal) + ": " + e.getMessage(), e);
        } finally {
            client.close();
        }
    }

    /**
     * Runs the try sd names (the method it resumes at, or nothing for a
     * try resumed after its trigger failed) and returns the terminal message
     * reporting how it ended; null when it deferred (DeferTask was the
     * terminal message).
     */
    Map<String, Object> runTry(StartupDetails sd, TaskContext ctx, LogSink logs) {
        TaskLogger sdkLog = new TaskLogger(logs, "taskwire.sdk", logLevel);
        String name = sd.taskName();
        String method = sd.nextMethod();

        Map<String, Object> terminal;
        if (Protocol.FAIL_METHOD.equals(method)) {
            // The worker normally ends such a try itself; end it the same way.
            Object e = sd.nextKwargs().get("error");
            String reason = e instanceof String s && !s.isEmpty() ? s : TRIGGER_FAILED_DEFAULT;
            sdkLog.error("resumed after the trigger failed: not running the task", "task_id", name, "error", reason);
            terminal = Protocol.retryTask(now(), reason(reason));
        } else {
            Task task = lookup(name, method);
            if (task == null) {
                String reason = method.isEmpty() ? "no task \"" + name + "\" in this runtime"
                        : "no method \"" + method + "\" for task \"" + name + "\" in this runtime";
                sdkLog.error("no code to run", "task_id", name, "next_method", method, "error", reason);
                terminal = Protocol.taskState("failed", now(), reason);
            } else {
                if (!method.isEmpty()) {
                    sdkLog.debug("resuming", "task_id", name, "next_method", method);
                }
                terminal = runTask(task, ctx, name, sdkLog);
            }
        }
        return terminal;
    }

    /** The code for task name resumed at method ("" on a first run), or null. */
    private Task lookup(String name, String method) {
        if (!method.isEmpty()) {
            Task t = methods.get(name + "\0" + method);
            if (t != null) {
                return t;
            }
        }
        return tasks.get(name);
    }

    /** Runs task and returns the terminal message reporting how it ended; null when it deferred. */
    private static Map<String, Object> runTask(Task task, TaskContext ctx, String name, TaskLogger sdkLog) {
        Throwable err;
        try {
            Object ret = task.run(ctx);
            if (ctx.isDeferred()) {
                sdkLog.warn("task deferred, then returned: its return value is ignored", "task_id", name);
                return null;
            }
            if (ret != null) {
                ctx.xcomPush("return_value", ret);
            }
            return Protocol.succeedTask(now());
        } catch (Throwable t) {
            err = t;
        }
        if (ctx.isDeferred()) {
            if (!(err instanceof TaskDeferred)) {
                sdkLog.warn("task deferred, then threw something else: ignored", "task_id", name, "error", err.toString());
            }
            return null;
        }
        if (err instanceof Skip) {
            String reason = err.getMessage() == null ? "" : err.getMessage();
            return Protocol.taskState("skipped", now(), reason(reason));
        }
        if (err instanceof Fail) {
            String reason = err.getMessage() == null ? "task failed" : err.getMessage();
            if (err.getCause() != null) {
                sdkLog.error("task failed", err.getCause(), "task_id", name, "reason", reason);
            }
            return Protocol.taskState("failed", now(), reason(reason));
        }
        if (ctx.isCancelled()) {
            // A warm try the worker cancelled: it takes no terminal message any more.
            sdkLog.info("try cancelled by the worker", "task_id", name, "outcome", err.toString());
            return Protocol.retryTask(now(), reason(err.toString()));
        }
        sdkLog.error("task raised " + err.getClass().getName(), err, "task_id", name);
        return Protocol.retryTask(now(), reason(err.toString()));
    }

    private static String reason(String s) {
        if (s.length() > MAX_REASON) {
            int end = MAX_REASON;
            if (Character.isHighSurrogate(s.charAt(end - 1))) {
                end--;
            }
            return s.substring(0, end) + "\n[truncated]";
        }
        return s;
    }

    private static String now() {
        return TaskLogger.timestamp(Instant.now());
    }
}
