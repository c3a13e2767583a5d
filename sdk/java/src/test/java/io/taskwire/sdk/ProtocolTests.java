package io.taskwire.sdk;

import static io.taskwire.sdk.Check.bytesEq;
import static io.taskwire.sdk.Check.eq;
import static io.taskwire.sdk.Check.fails;
import static io.taskwire.sdk.Check.isTrue;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import java.util.concurrent.TimeUnit;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.nio.channels.Channels;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Stream;

// A bound for a hang, not a speed target: testDoublesRoundTrip and the Go
// vectors took 56s and 23s of CPU-starved JVM on a loaded 2-core box.
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class ProtocolTests {

    /** The message types the worker sends: their frames are responses [id, msg, error]. */
    static final Set<String> RESPONSES = Set.of("StartupDetails", "ConnectionResult", "VariableResult", "XComResult",
            "OKResponse", "ErrorResponse");

    static final Set<String> ALL_TYPES = Set.of("StartupDetails", "ConnectionResult", "VariableResult", "XComResult",
            "OKResponse", "ErrorResponse", "GetConnection", "GetVariable", "PutVariable", "GetXCom", "SetXCom",
            "DeleteXCom", "DeferTask", "RetryTask", "SucceedTask", "TaskState", "MaskSecret");

    static byte[] frame(byte[] body) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try {
            new FrameConn(Channels.newChannel(new ByteArrayInputStream(new byte[0])), Channels.newChannel(out), 0).writeFrame(body);
        } catch (IOException e) {
            throw new AssertionError(e);
        }
        return out.toByteArray();
    }

    static FrameConn reader(byte[] data) {
        return new FrameConn(Channels.newChannel(new ByteArrayInputStream(data)), Channels.newChannel(new ByteArrayOutputStream()), 0);
    }

    /** Reads the single frame of data, checking nothing follows it. */
    static byte[] body(byte[] data) throws IOException {
        FrameConn c = reader(data);
        byte[] b = c.readFrame();
        isTrue(b != null, "a frame");
        eq(null, c.readFrame(), "nothing after the frame");
        return b;
    }

    /** Decodes a frame of the given message type and encodes it again. */
    static byte[] reencode(String type, byte[] data) throws IOException {
        byte[] b = body(data);
        if (RESPONSES.contains(type)) {
            Protocol.Response r = Protocol.decodeResponse(b);
            if (type.equals("ErrorResponse")) {
                eq(null, r.msg(), "msg of an error response");
                eq("ErrorResponse", Protocol.type(r.error()), "error type");
            } else {
                eq(type, Protocol.type(r.msg()), "msg type");
            }
            return frame(Protocol.encodeResponse(r.id(), r.msg(), r.error()));
        }
        Protocol.Request r = Protocol.decodeRequest(b);
        eq(type, Protocol.type(r.msg()), "msg type");
        return frame(Protocol.encodeRequest(r.id(), r.msg()));
    }

    static List<Path> files(Path dir, String suffix) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            List<Path> out = new ArrayList<>(s.filter(p -> p.getFileName().toString().endsWith(suffix)).sorted().toList());
            return out;
        }
    }

    static Path golden() {
        return TestData.golden();
    }

    // ------------------------------------------------------- golden vectors

    /** Every golden frame of the Go protocol package decodes and re-encodes to the same bytes. */
    @Test
    void testGoldenFramesReencodeIdentically() throws IOException {
        Set<String> seen = new TreeSet<>();
        for (Path p : files(golden(), ".json.bin")) {
            String name = p.getFileName().toString().replace(".json.bin", "");
            byte[] want = Files.readAllBytes(p);
            bytesEq(want, reencode(name, want), "re-encoded " + p.getFileName());
            seen.add(name);
        }
        eq(new TreeSet<>(ALL_TYPES), seen, "golden frames cover every message type");
    }

    /** The messages of golden_test.go, built with Protocol's builders, encode to the golden bytes. */
    @Test
    void testBuildersMatchGoldenFrames() throws IOException {
        Map<String, byte[]> built = new LinkedHashMap<>();
        String run = "scheduled__2026-11-22T00:00:00+00:00";
        String end = "2026-11-22T08:16:02.5Z";

        Map<String, Object> params = map("day", "2026-11-22", "dry_run", false, "limit", 500, "ratio", 0.25,
                "tables", List.of("orders", "customers"), "target", map("partitions", 8, "schema", "analytics"));
        Map<String, Object> nextKwargs = map("attempts", List.of(1, 2), "event", map("rows", 1204, "status", "done"));
        built.put("StartupDetails", Protocol.encodeResponse(0, Protocol.startupDetails(
                new TaskInstance("0195b3c2-7a1e-7c4d-9f1a-3b2c1d0e9f8a", "etl", "transform", run, -1, 2), 3, "go", "transform",
                params, "resume_after_wait", nextKwargs, "2026-11-22T08:15:30.123456Z"), null));
        built.put("ConnectionResult", Protocol.encodeResponse(3, Protocol.connectionResult(new Connection("warehouse", "postgres",
                "db.internal", "analytics", "etl_user", "s3cret!", 5432,
                map("connect_timeout", 10, "options", List.of("-c", "statement_timeout=60000"), "sslmode", "require"))), null));
        built.put("VariableResult", Protocol.encodeResponse(4, Protocol.variableResult("greeting", "hello taskwire"), null));
        built.put("XComResult", Protocol.encodeResponse(5, Protocol.xcomResult("return_value", map(
                "files", List.of("s3://bucket/a.parquet", "s3://bucket/b.parquet"), "mean", 17.5, "missing", null, "ok", true,
                "rows", 1204, "stats", map("max", 99, "min", -3))), null));
        built.put("OKResponse", Protocol.encodeResponse(6, Protocol.okResponse(), null));
        built.put("ErrorResponse", Protocol.encodeResponse(7, null, Protocol.errorResponse("not_found",
                map("key", "greeting", "message", "variable \"greeting\" not found", "status", 404))));
        built.put("GetConnection", Protocol.encodeRequest(3, Protocol.getConnection("warehouse")));
        built.put("GetVariable", Protocol.encodeRequest(4, Protocol.getVariable("greeting")));
        built.put("PutVariable", Protocol.encodeRequest(8, Protocol.putVariable("last_run", "2026-11-22", "day the ETL last ran")));
        built.put("GetXCom", Protocol.encodeRequest(5, Protocol.getXCom("return_value", "etl", run, "extract", 2)));
        built.put("SetXCom", Protocol.encodeRequest(9, Protocol.setXCom("summary", map("done", true, "none", null, "ratio", 0.25,
                "rows", 1204, "tags", List.of("daily", map("k", "v"))), "etl", run, "transform", -1)));
        built.put("DeleteXCom", Protocol.encodeRequest(10, Protocol.deleteXCom("scratch", "etl",
                "manual__2026-11-22T09:00:00+00:00", "transform", 0)));
        built.put("DeferTask", Protocol.encodeRequest(11, Protocol.deferTask("taskwire.triggers.TimeDelta",
                map("delta", "90s", "poll", map("interval", "5s", "jitter", 0.1)), "1h",
                "resume_after_wait", map("attempt", 1, "ids", List.of(7, 8)))));
        built.put("RetryTask", Protocol.encodeRequest(12, Protocol.retryTask(end, "upstream API returned 503")));
        built.put("SucceedTask", Protocol.encodeRequest(12, Protocol.succeedTask(end)));
        built.put("TaskState", Protocol.encodeRequest(12, Protocol.taskState("skipped", end, "no new partitions")));
        built.put("MaskSecret", Protocol.encodeRequest(2, Protocol.maskSecret("s3cret!", "warehouse_password")));

        eq(ALL_TYPES, built.keySet(), "built every type");
        for (Map.Entry<String, byte[]> e : built.entrySet()) {
            byte[] want = Files.readAllBytes(golden().resolve(e.getKey() + ".json.bin"));
            bytesEq(want, frame(e.getValue()), "built " + e.getKey());
        }
    }

    /** StartupDetails of the golden frame decodes into the fields Go wrote. */
    @Test
    void testGoldenStartupDetailsDecodes() throws IOException {
        byte[] b = body(Files.readAllBytes(golden().resolve("StartupDetails.json.bin")));
        StartupDetails sd = StartupDetails.parse(Protocol.decodeResponse(b).msg());
        eq(new TaskInstance("0195b3c2-7a1e-7c4d-9f1a-3b2c1d0e9f8a", "etl", "transform", "scheduled__2026-11-22T00:00:00+00:00", -1, 2),
                sd.ti(), "ti");
        eq(3, sd.maxTries(), "max tries");
        eq("go", sd.queue(), "queue");
        eq("transform", sd.taskName(), "task name");
        eq(500L, sd.params().get("limit"), "params.limit");
        eq(0.25, sd.params().get("ratio"), "params.ratio");
        eq(List.of("orders", "customers"), sd.params().get("tables"), "params.tables");
        eq("resume_after_wait", sd.nextMethod(), "next method");
        eq(map("rows", 1204L, "status", "done"), sd.nextKwargs().get("event"), "event");
        eq("2026-11-22T08:15:30.123456Z", sd.startDate(), "start date");
    }

    /** Frames Go's protocol package wrote for java_test.go (tricky strings and numbers) re-encode identically. */
    @Test
    void testGoVectorFramesReencodeIdentically() throws IOException {
        List<Path> fs = files(TestData.goVectors(), ".json.bin");
        isTrue(fs.size() >= 4, "vector frames found: " + fs.size());
        for (Path p : fs) {
            // request-GetVariable-3.json.bin / response-XComResult-1.json.bin
            String[] parts = p.getFileName().toString().split("-");
            byte[] want = Files.readAllBytes(p);
            byte[] b = body(want);
            byte[] got = parts[0].equals("response")
                    ? Protocol.encodeResponse(Protocol.decodeResponse(b).id(), Protocol.decodeResponse(b).msg(), Protocol.decodeResponse(b).error())
                    : Protocol.encodeRequest(Protocol.decodeRequest(b).id(), Protocol.decodeRequest(b).msg());
            bytesEq(want, frame(got), "re-encoded " + p.getFileName());
        }
    }

    /** JSON values Go's encoding/json wrote (one a line) re-encode identically. */
    @Test
    void testGoVectorValuesReencodeIdentically() throws IOException {
        int n = 0;
        for (String file : new String[] {"values_html.jsonl", "values_nohtml.jsonl"}) {
            boolean html = file.equals("values_html.jsonl");
            for (String line : Files.readAllLines(TestData.goVectors().resolve(file), StandardCharsets.UTF_8)) {
                eq(line, Json.write(Json.parse(line), html), file + " line " + n);
                n++;
            }
        }
        isTrue(n > 1000, "vector values found: " + n);
    }

    /** Durations as Go's time.Duration.String writes them. */
    @Test
    void testGoDurations() throws IOException {
        eq("1m30s", GoDuration.format(Duration.ofSeconds(90)), "90s");
        eq("1h0m0s", GoDuration.format(Duration.ofHours(1)), "1h");
        eq("1.5s", GoDuration.format(Duration.ofMillis(1500)), "1.5s");
        eq("500ms", GoDuration.format(Duration.ofMillis(500)), "500ms");
        eq("1.5ms", GoDuration.format(Duration.ofNanos(1_500_000)), "1.5ms");
        eq("2\u00b5s", GoDuration.format(Duration.ofNanos(2000)), "2us");
        eq("100ns", GoDuration.format(Duration.ofNanos(100)), "100ns");
        eq("0s", GoDuration.format(Duration.ZERO), "0");
        eq("26h3m4.000000005s", GoDuration.format(Duration.ofSeconds(26 * 3600 + 184, 5)), "long");
        fails(IllegalArgumentException.class, "too long", () -> GoDuration.format(Duration.ofDays(365L * 300)), "overflow");
        List<String> lines = Files.readAllLines(TestData.goVectors().resolve("durations.txt"), StandardCharsets.UTF_8);
        for (String line : lines) {
            String[] f = line.split(" ", 2);
            eq(f[1], GoDuration.format(Long.parseLong(f[0])), "duration " + f[0] + "ns");
        }
        isTrue(lines.size() > 100, "durations found: " + lines.size());
    }

    // ---------------------------------------------------------------- frames

    @Test
    void testFrameLimits() throws IOException {
        byte[] huge = {(byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff, 1, 2};
        fails(ProtocolException.class, "frame too large", () -> reader(huge).readFrame(), "4 GiB header");
        int max = FrameConn.MAX_FRAME_SIZE_DEFAULT;
        byte[] over = {(byte) ((max + 1) >>> 24), (byte) ((max + 1) >>> 16), (byte) ((max + 1) >>> 8), (byte) (max + 1)};
        fails(ProtocolException.class, "the limit is " + max, () -> reader(over).readFrame(), "limit + 1");
        FrameConn small = new FrameConn(Channels.newChannel(new ByteArrayInputStream(frame(new byte[10]))),
                Channels.newChannel(new ByteArrayOutputStream()), 8);
        fails(ProtocolException.class, "10 bytes, the limit is 8", small::readFrame, "custom limit");
        fails(ProtocolException.class, "frame too large", () -> small.writeFrame(new byte[9]), "write over the limit");
        eq(null, reader(new byte[0]).readFrame(), "clean EOF");
        fails(EOFException.class, "inside a frame", () -> reader(new byte[] {0, 0}).readFrame(), "EOF in the header");
        fails(EOFException.class, "inside a frame", () -> reader(new byte[] {0, 0, 0, 5, 1}).readFrame(), "EOF in the body");
        byte[] two = concat(frame("[1,{\"type\":\"OKResponse\"}]".getBytes(StandardCharsets.UTF_8)), frame(new byte[0]));
        FrameConn c = reader(two);
        eq("[1,{\"type\":\"OKResponse\"}]", new String(c.readFrame(), StandardCharsets.UTF_8), "first frame");
        eq(0, c.readFrame().length, "empty frame");
        eq(null, c.readFrame(), "then EOF");
        byte[] f = frame(new byte[300]);
        eq(Arrays.toString(new byte[] {0, 0, 1, 44}), Arrays.toString(Arrays.copyOf(f, 4)), "big-endian length");
    }

    @Test
    void testDecodeRejectsMalformedBodies() {
        String[][] badResponses = {
            {"{}", "want an array"}, {"[1]", "want 2 or 3"}, {"[1,null,null,null]", "want 2 or 3"}, {"[\"1\",null]", "id is a string"},
            {"[1.5,null]", "id is a number"}, {"[1,{}]", "msg type is null"}, {"[1,{\"type\":3}]", "msg type is an integer"},
            {"[1,[],null]", "msg is an array"}, {"[1,null,\"x\"]", "error is a string"},
            {"[1,null,{\"type\":\"OKResponse\"}]", "want ErrorResponse"}, {"[1,{\"type\":\"OKResponse\"}", "malformed response"},
        };
        for (String[] c : badResponses) {
            fails(ProtocolException.class, c[1], () -> Protocol.decodeResponse(c[0].getBytes(StandardCharsets.UTF_8)), "response " + c[0]);
        }
        fails(ProtocolException.class, "no error element", () -> Protocol.decodeRequest(b("[1,{\"type\":\"GetVariable\"},{}]")), "request with error");
        fails(ProtocolException.class, "msg is null", () -> Protocol.decodeRequest(b("[1,null]")), "request without msg");
    }

    @Test
    void testDecodeAcceptsWhatGoAccepts() throws IOException {
        Protocol.Response r = Protocol.decodeResponse(b("[4,{\"type\":\"OKResponse\"}]"));
        eq(4L, r.id(), "id");
        eq(null, r.error(), "no trailing error");
        r = Protocol.decodeResponse(b(" [ 5 , null , { \"error\" : \"api_error\" } ] "));
        eq("api_error", r.error().get("error"), "error without a type");
        eq(2L, Protocol.decodeRequest(b("[2.0,{\"type\":\"SucceedTask\"},null]")).id(), "integral id as a float");
    }

    static byte[] b(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    static byte[] concat(byte[] a, byte[] c) {
        byte[] out = Arrays.copyOf(a, a.length + c.length);
        System.arraycopy(c, 0, out, a.length, c.length);
        return out;
    }

    /** A LinkedHashMap of key-value pairs, in order; Integer values become Long as decoding yields them. */
    static Map<String, Object> map(Object... kv) {
        Map<String, Object> m = new LinkedHashMap<>();
        for (int i = 0; i < kv.length; i += 2) {
            Object v = kv[i + 1];
            m.put((String) kv[i], v instanceof Integer n ? (Object) n.longValue() : v);
        }
        return m;
    }
}
