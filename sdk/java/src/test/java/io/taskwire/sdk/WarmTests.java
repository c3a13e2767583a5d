package io.taskwire.sdk;

import static io.taskwire.sdk.Check.eq;
import static io.taskwire.sdk.Check.isTrue;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Warm mode ({@link TaskRuntime#runWarm}) against an in-process fake warm
 * worker on real sockets: several tries at once, each on its own comm
 * connection with its own log stream; cancellation by half-close;
 * retirement when the worker stops taking connections.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS) // a bound for a hang, not a speed target
class WarmTests {

    /** One try the fake worker gave a slot. */
    static final class Try {
        final String tiId;
        final SocketChannel ch;
        final FrameConn conn;
        final List<Map<String, Object>> requests = Collections.synchronizedList(new ArrayList<>());
        volatile Map<String, Object> terminal;
        final CountDownLatch closed = new CountDownLatch(1);

        Try(String tiId, SocketChannel ch) {
            this.tiId = tiId;
            this.ch = ch;
            this.conn = new FrameConn(ch);
        }

        void serve() {
            try {
                while (true) {
                    byte[] body = conn.readFrame();
                    if (body == null) {
                        return;
                    }
                    Protocol.Request req = Protocol.decodeRequest(body);
                    Map<String, Object> m = req.msg();
                    requests.add(m);
                    Map<String, Object> resp = Protocol.okResponse();
                    switch (Protocol.type(m)) {
                        case "GetVariable" -> resp = Protocol.variableResult((String) m.get("key"), "value-of-" + tiId);
                        case "SucceedTask", "TaskState", "RetryTask", "DeferTask" -> terminal = m;
                        default -> { }
                    }
                    conn.writeFrame(Protocol.encodeResponse(req.id(), resp, null));
                }
            } catch (IOException e) {
                // the try's connection ended
            } finally {
                closed.countDown();
            }
        }

        /** What the worker does to cancel a try: half-close its connection. */
        void cancel() throws IOException {
            ch.shutdownOutput();
        }

        Map<String, Object> await() throws InterruptedException {
            isTrue(closed.await(10, TimeUnit.SECONDS), "try " + tiId + ": connection still open");
            return terminal;
        }
    }

    static final class FakeWarmWorker implements AutoCloseable {
        final ServerSocketChannel comm = ServerSocketChannel.open().bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
        final ServerSocketChannel logs = ServerSocketChannel.open().bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
        final Map<String, List<String>> streams = new ConcurrentHashMap<>(); // ti_id -> events
        final java.util.Set<String> ended = ConcurrentHashMap.newKeySet(); // ti_ids whose lines all came
        final java.util.concurrent.atomic.AtomicInteger logConns = new java.util.concurrent.atomic.AtomicInteger();
        final List<Throwable> problems = Collections.synchronizedList(new ArrayList<>());
        final Thread runtime;
        final Thread logThread;

        FakeWarmWorker(TaskRuntime rt, int slots) throws IOException {
            String commAddr = addr(comm);
            String logsAddr = addr(logs);
            runtime = new Thread(() -> {
                try {
                    rt.runWarm(commAddr, logsAddr, slots);
                } catch (Throwable t) {
                    problems.add(t);
                }
            }, "warm-runtime");
            runtime.start();
            logThread = new Thread(this::serveLogs, "fake-logs");
            logThread.setDaemon(true);
            logThread.start();
        }

        static String addr(ServerSocketChannel ch) throws IOException {
            InetSocketAddress a = (InetSocketAddress) ch.getLocalAddress();
            return a.getAddress().getHostAddress() + ":" + a.getPort();
        }

        Try start(String tiId, String task) throws IOException {
            SocketChannel c = comm.accept();
            Try t = new Try(tiId, c);
            FakeWorker.checkAuth(t.conn);
            t.conn.writeFrame(Protocol.encodeResponse(0, Protocol.startupDetails(new TaskInstance(tiId, "etl", task, "r1", -1, 1),
                    2, "java", task, null, null, null, "2026-11-22T08:15:30Z"), null));
            Thread th = new Thread(t::serve, "fake-try-" + tiId);
            th.setDaemon(true);
            th.start();
            return t;
        }

        private void serveLogs() {
            while (true) {
                SocketChannel c;
                try {
                    c = logs.accept();
                } catch (IOException e) {
                    return;
                }
                Thread th = new Thread(() -> readStream(c));
                th.setDaemon(true);
                th.start();
            }
        }

        /**
         * Reads a log connection: one try's stream (a ti_id header) or the
         * process's multiplexed one ({"mux":true}: each line named by its
         * try, an empty one ending the try's lines).
         */
        private void readStream(SocketChannel c) {
            logConns.incrementAndGet();
            try (c; java.io.BufferedReader r = new java.io.BufferedReader(new java.io.InputStreamReader(
                    java.nio.channels.Channels.newInputStream(c), StandardCharsets.UTF_8))) {
                Map<String, Object> hdr = Protocol.cast(Json.parse(r.readLine()));
                if (!FakeWorker.TEST_SECRET.equals(hdr.get("secret"))) {
                    throw new IllegalStateException("log header without the secret: " + hdr);
                }
                boolean mux = Boolean.TRUE.equals(hdr.get("mux"));
                String single = mux ? null : (String) hdr.get("ti_id");
                for (String line; (line = r.readLine()) != null; ) {
                    String ti = single;
                    if (mux) {
                        String[] parts = line.split("\t", 3);
                        ti = parts[0];
                        Long.parseLong(parts[1]);
                        line = parts[2];
                        if (line.isEmpty()) {
                            ended.add(ti);
                            continue;
                        }
                    }
                    if (!line.isBlank()) {
                        Map<String, Object> rec = Protocol.cast(Json.parse(line));
                        streams.computeIfAbsent(ti, k -> Collections.synchronizedList(new ArrayList<>())).add((String) rec.get("event"));
                    }
                }
                if (single != null) {
                    streams.computeIfAbsent(single, k -> Collections.synchronizedList(new ArrayList<>()));
                    ended.add(single);
                }
            } catch (IOException | RuntimeException e) {
                problems.add(e);
            }
        }

        List<String> events(String tiId) throws InterruptedException {
            long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (System.nanoTime() < end) {
                if (ended.contains(tiId)) {
                    return new ArrayList<>(streams.getOrDefault(tiId, List.of()));
                }
                Thread.sleep(5);
            }
            throw new AssertionError("no log stream for " + tiId);
        }

        /** Stops taking connections, as the worker does to retire a process. */
        void retire() throws IOException {
            comm.close();
        }

        @Override
        public void close() throws Exception {
            retire();
            runtime.join(10_000);
            logs.close();
        }
    }

    static final Map<String, CountDownLatch> started = new ConcurrentHashMap<>();

    static CountDownLatch started(String tiId) {
        return started.computeIfAbsent(tiId, k -> new CountDownLatch(1));
    }

    static TaskRuntime app() {
        CountDownLatch both = new CountDownLatch(2);
        return new TaskRuntime()
                .register("api", ctx -> {
                    String v = ctx.variable("k");
                    ctx.log().info(ctx.ti().id() + " read " + v);
                    return v;
                })
                // Returns only once two of its tries run at once.
                .register("pair", ctx -> {
                    both.countDown();
                    isTrue(both.await(10, TimeUnit.SECONDS), "the other pair try did not run at the same time");
                    ctx.log().info("through " + ctx.ti().id());
                    return null;
                })
                .register("block", ctx -> {
                    ctx.log().info("started");
                    started(ctx.ti().id()).countDown();
                    try {
                        Thread.sleep(3_600_000);
                    } catch (InterruptedException e) {
                        ctx.log().info("cancelled " + ctx.isCancelled());
                        throw e;
                    }
                    return null;
                });
    }

    @Test
    void testTriesAtOnceEachWithItsOwnConnectionAndLog() throws Exception {
        try (FakeWarmWorker w = new FakeWarmWorker(app(), 3)) {
            Try a = w.start("ti-a", "api");
            Try p1 = w.start("ti-p1", "pair");
            Try p2 = w.start("ti-p2", "pair");
            for (Try t : List.of(a, p1, p2)) {
                eq("SucceedTask", Protocol.type(t.await()), t.tiId + " terminal");
            }
            eq(List.of("GetVariable", "SetXCom", "SucceedTask"), a.requests.stream().map(Protocol::type).toList(), "requests");
            eq("value-of-ti-a", a.requests.get(1).get("value"), "xcom value");
            eq(List.of("ti-a read value-of-ti-a"), w.events("ti-a"), "ti-a's log");
            eq(List.of("through ti-p1"), w.events("ti-p1"), "ti-p1's log");
            eq(List.of("through ti-p2"), w.events("ti-p2"), "ti-p2's log");
            eq(1, w.logConns.get(), "log connections of the process (one, multiplexed)");
            // The slots connect again for the next tries.
            eq("SucceedTask", Protocol.type(w.start("ti-a2", "api").await()), "next try");
            eq(List.of(), w.problems, "problems");
        }
    }

    @Test
    void testCancelOneAmongSeveral() throws Exception {
        try (FakeWarmWorker w = new FakeWarmWorker(app(), 2)) {
            Try b = w.start("ti-b", "block");
            isTrue(started("ti-b").await(10, TimeUnit.SECONDS), "ti-b started");
            b.cancel();
            eq(null, b.await(), "a cancelled try's terminal message");
            eq(List.of("started", "cancelled true", "try cancelled by the worker"), w.events("ti-b"), "ti-b's log");
            // The process goes on serving, on both slots.
            Try x = w.start("ti-x", "api");
            Try y = w.start("ti-y", "api");
            eq("SucceedTask", Protocol.type(x.await()), "ti-x");
            eq("SucceedTask", Protocol.type(y.await()), "ti-y");
        }
    }

    @Test
    void testLogStreamHeaderIsTheGoldenVector() throws Exception {
        String want = java.nio.file.Files.readString(TestData.protocolTestdata().resolve("log_stream_header.jsonl"), StandardCharsets.UTF_8);
        eq(want, TaskRuntime.logStreamHeader(new TaskInstance("0195b3c2-7a1e-7c4d-9f1a-3b2c1d0e9f8a", "d", "t", "r", -1, 2), GOLDEN_SECRET) + "\n",
                "log stream header");
    }

    /** The secret in the golden vectors (Go's goldenSecret). */
    static final String GOLDEN_SECRET = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    @Test
    void testColdLogHeaderIsTheGoldenVector() throws Exception {
        String want = java.nio.file.Files.readString(TestData.protocolTestdata().resolve("log_stream_cold.jsonl"), StandardCharsets.UTF_8);
        eq(want, Protocol.logHeader(GOLDEN_SECRET, null, 0, false) + "\n", "cold log header");
    }

    @Test
    void testAuthFrameIsTheGoldenVector() throws Exception {
        byte[] want = java.nio.file.Files.readAllBytes(TestData.protocolTestdata().resolve("auth_frame.bin"));
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        new FrameConn(java.nio.channels.Channels.newChannel(new java.io.ByteArrayInputStream(new byte[0])),
                java.nio.channels.Channels.newChannel(out), 0).writeFrame(Protocol.authBody(GOLDEN_SECRET));
        eq(true, java.util.Arrays.equals(want, out.toByteArray()), "auth frame = " + out);
    }

    @Test
    void testMuxLogLinesAreTheGoldenVector() throws Exception {
        String want = java.nio.file.Files.readString(TestData.protocolTestdata().resolve("log_stream_mux.txt"), StandardCharsets.UTF_8);
        String id = "0195b3c2-7a1e-7c4d-9f1a-3b2c1d0e9f8a";
        String got = Protocol.logHeader(GOLDEN_SECRET, null, 0, true) + "\n"
                + LogSink.muxPrefix(id, 2) + "{\"event\":\"hello\",\"level\":\"info\"}\n"
                + LogSink.muxPrefix("other", 1) + "{\"event\":\"tab\\tinside\",\"level\":\"warning\"}\n"
                + LogSink.muxPrefix(id, 2) + "\n";
        eq(want, got, "mux log connection");
    }

    @Test
    void testRetiredRuntimeReturns() throws Exception {
        try (FakeWarmWorker w = new FakeWarmWorker(app(), 2)) {
            eq("SucceedTask", Protocol.type(w.start("ti-1", "api").await()), "ti-1");
            w.retire();
            w.runtime.join(10_000);
            isTrue(!w.runtime.isAlive(), "runWarm still running after the worker closed its listener");
            eq(List.of(), w.problems, "problems");
        }
    }
}
