package io.taskwire.sdk;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A stand-in worker on real sockets (loopback TCP, or unix sockets): it sends
 * StartupDetails with id 0, answers requests from its variables, connections
 * and XComs, records every request, the terminal message and the log lines.
 */
final class FakeWorker implements AutoCloseable {
    final Map<String, String> variables = new HashMap<>();
    final Map<String, Connection> connections = new HashMap<>();
    final Map<String, Object> xcoms = Collections.synchronizedMap(new HashMap<>()); // task_id/key
    /** Answers the fake gives instead of its own, by message type: an ErrorResponse map. */
    final Map<String, Map<String, Object>> errors = new HashMap<>();

    final List<Protocol.Request> requests = Collections.synchronizedList(new ArrayList<>());
    final List<Map<String, Object>> terminals = Collections.synchronizedList(new ArrayList<>());
    final List<String> logLines = Collections.synchronizedList(new ArrayList<>());
    final List<Throwable> problems = Collections.synchronizedList(new ArrayList<>());

    private final ServerSocketChannel comm;
    private final ServerSocketChannel logs;
    private final Path dir;
    private Thread commThread;
    private Thread logsThread;

    String task = "t";
    String entrypoint = "t";
    Map<String, Object> params;
    String nextMethod;
    Map<String, Object> nextKwargs;
    DagRun dagRun;
    /** When set, sent as the first frame instead of StartupDetails. */
    byte[] firstFrame;

    FakeWorker(boolean unix) throws IOException {
        if (unix) {
            dir = Files.createTempDirectory("twjava");
            comm = ServerSocketChannel.open(StandardProtocolFamily.UNIX).bind(UnixDomainSocketAddress.of(dir.resolve("comm.sock")));
            logs = ServerSocketChannel.open(StandardProtocolFamily.UNIX).bind(UnixDomainSocketAddress.of(dir.resolve("logs.sock")));
        } else {
            dir = null;
            comm = ServerSocketChannel.open().bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
            logs = ServerSocketChannel.open().bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
        }
    }

    FakeWorker() throws IOException {
        this(false);
    }

    String commAddr() throws IOException {
        return addr(comm);
    }

    String logsAddr() throws IOException {
        return addr(logs);
    }

    private String addr(ServerSocketChannel ch) throws IOException {
        if (ch.getLocalAddress() instanceof UnixDomainSocketAddress u) {
            return u.getPath().toString();
        }
        InetSocketAddress a = (InetSocketAddress) ch.getLocalAddress();
        return a.getAddress().getHostAddress() + ":" + a.getPort();
    }

    TaskInstance ti() {
        return new TaskInstance("ti-1", "etl", task, "r1", -1, 1);
    }

    /** The secret the runtimes under test present (pom.xml sets it in the environment). */
    static final String TEST_SECRET = "0123456789abcdef0123456789abcdef";

    /** Reads the auth frame a runtime sends first and checks its secret, as the worker does. */
    static void checkAuth(FrameConn conn) throws IOException {
        byte[] body = conn.readFrame();
        if (body == null || !java.util.Arrays.equals(body, Protocol.authBody(TEST_SECRET))) {
            throw new AssertionError("auth frame " + (body == null ? "missing" : new String(body, StandardCharsets.UTF_8)));
        }
    }

    /** Starts serving one runtime connection on each address. */
    FakeWorker start() {
        commThread = new Thread(this::serveComm, "fake-worker-comm");
        logsThread = new Thread(this::serveLogs, "fake-worker-logs");
        commThread.setDaemon(true);
        logsThread.setDaemon(true);
        commThread.start();
        logsThread.start();
        return this;
    }

    private void serveComm() {
        try (SocketChannel c = comm.accept()) {
            FrameConn conn = new FrameConn(c);
            checkAuth(conn);
            if (firstFrame != null) {
                conn.writeFrame(firstFrame);
            } else {
                conn.writeFrame(Protocol.encodeResponse(0, Protocol.startupDetails(ti(), 2, "java", entrypoint, params, nextMethod,
                        nextKwargs, "2026-11-22T08:15:30Z", dagRun), null));
            }
            while (true) {
                byte[] body = conn.readFrame();
                if (body == null) {
                    return;
                }
                Protocol.Request req = Protocol.decodeRequest(body);
                requests.add(req);
                Map<String, Object> msg = Protocol.okResponse();
                Map<String, Object> err = errors.get(Protocol.type(req.msg()));
                Map<String, Object> m = req.msg();
                switch (Protocol.type(m)) {
                    case "SucceedTask", "TaskState", "RetryTask" -> terminals.add(m);
                    case "DeferTask" -> {
                        if (err == null) {
                            terminals.add(m);
                        }
                    }
                    case "GetVariable" -> {
                        String v = variables.get((String) m.get("key"));
                        if (v == null) {
                            err = Protocol.errorResponse("not_found", Map.of("message", "variable " + m.get("key") + " not found"));
                        } else {
                            msg = Protocol.variableResult((String) m.get("key"), v);
                        }
                    }
                    case "GetConnection" -> {
                        Connection v = connections.get((String) m.get("conn_id"));
                        if (v == null) {
                            err = Protocol.errorResponse("not_found", Map.of("message", "connection " + m.get("conn_id") + " not found"));
                        } else {
                            msg = Protocol.connectionResult(v);
                        }
                    }
                    case "GetXCom" -> msg = Protocol.xcomResult((String) m.get("key"), xcoms.get(m.get("task_id") + "/" + m.get("key")));
                    case "SetXCom" -> xcoms.put(m.get("task_id") + "/" + m.get("key"), m.get("value"));
                    case "PutVariable" -> variables.put((String) m.get("key"), (String) m.get("value"));
                    default -> { }
                }
                if (err != null) {
                    msg = null;
                }
                conn.writeFrame(Protocol.encodeResponse(req.id(), msg, err));
            }
        } catch (Throwable e) {
            if (comm.isOpen()) {
                problems.add(e);
            }
        }
    }

    private void serveLogs() {
        try (SocketChannel c = logs.accept();
                BufferedReader r = new BufferedReader(new InputStreamReader(Channels.newInputStream(c), StandardCharsets.UTF_8))) {
            String header = r.readLine();
            if (header != null && !header.equals(Protocol.logHeader(TEST_SECRET, null, 0, false))) {
                throw new AssertionError("log header " + header);
            }
            String line;
            while ((line = r.readLine()) != null) {
                logLines.add(line);
            }
        } catch (Throwable e) {
            if (logs.isOpen()) {
                problems.add(e);
            }
        }
    }

    /** Waits for the runtime's connections to end. */
    void await() throws InterruptedException {
        commThread.join(10_000);
        logsThread.join(10_000);
        if (!problems.isEmpty()) {
            AssertionError e = new AssertionError("fake worker: " + problems.get(0));
            e.initCause(problems.get(0));
            throw e;
        }
    }

    /** The single terminal message. */
    Map<String, Object> terminal() {
        Check.eq(1, terminals.size(), "terminal messages " + terminals);
        return terminals.get(0);
    }

    /** The requests' messages, in order. */
    List<Map<String, Object>> messages() {
        List<Map<String, Object>> out = new ArrayList<>();
        synchronized (requests) {
            for (Protocol.Request r : requests) {
                out.add(r.msg());
            }
        }
        return out;
    }

    /** The requests' types, in order. */
    List<String> types() {
        List<String> out = new ArrayList<>();
        for (Map<String, Object> m : messages()) {
            out.add(Protocol.type(m));
        }
        return out;
    }

    /** The log lines, decoded. */
    List<Map<String, Object>> logRecords() {
        List<Map<String, Object>> out = new ArrayList<>();
        synchronized (logLines) {
            for (String l : logLines) {
                out.add(Protocol.cast(Json.parse(l)));
            }
        }
        return out;
    }

    String logs() {
        synchronized (logLines) {
            return String.join("\n", logLines);
        }
    }

    @Override
    public void close() throws IOException {
        comm.close();
        logs.close();
        if (dir != null) {
            Files.deleteIfExists(dir.resolve("comm.sock"));
            Files.deleteIfExists(dir.resolve("logs.sock"));
            Files.deleteIfExists(dir);
        }
    }
}
