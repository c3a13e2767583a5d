package io.taskwire.sdk;

import static io.taskwire.sdk.Check.bytesEq;
import static io.taskwire.sdk.Check.eq;
import static io.taskwire.sdk.Check.fails;
import static io.taskwire.sdk.Check.isTrue;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import java.util.concurrent.TimeUnit;

import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.UUID;

// A bound for a hang, not a speed target: testDoublesRoundTrip and the Go
// vectors took 56s and 23s of CPU-starved JVM on a loaded 2-core box.
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class JsonTests {

    // ------------------------------------------------------------- strings

    @Test
    void testEscapesLikeGo() {
        String s = "q\" b\\ n\n r\r t\t bs\b ff\f c1\u0001 c1f\u001f del\u007f";
        String want = "\"q\\\" b\\\\ n\\n r\\r t\\t bs\\b ff\\f c1\\u0001 c1f\\u001f del\u007f\"";
        eq(want, Json.write(s), "escapes");
        eq(want, Json.write(s, false), "escapes without html");
    }

    @Test
    void testHtmlEscaping() {
        eq("\"\\u003ca href=\\\"x\\\"\\u003e\\u0026\\u003c/a\\u003e\"", Json.write("<a href=\"x\">&</a>"), "html escaped");
        eq("\"<a>&</a>\"", Json.write("<a>&</a>", false), "html raw");
        eq("\"\\u2028\\u2029\"", Json.write("\u2028\u2029", false), "line separators always escaped");
        eq("<>&", Json.parse("\"\\u003c\\u003e\\u0026\""), "parse html escapes");
    }

    @Test
    void testUnicodeRawUtf8() {
        String s = "h\u00e9llo w\u00f6rld \u2713 \u65e5\u672c \ud83d\ude00";
        byte[] b = Json.writeBytes(s, true);
        bytesEq(("\"" + s + "\"").getBytes(StandardCharsets.UTF_8), b, "raw utf-8");
        eq(s, Json.parse(b), "utf-8 round trip");
        eq("\"\\ufffd\"", Json.write("\ud83d"), "lone high surrogate");
        eq("\"a\\ufffdb\"", Json.write("a\ude00b"), "lone low surrogate");
        eq("\"\\ufffd\ud83d\ude00\"", Json.write("\ud83d\ud83d\ude00"), "high then pair");
    }

    @Test
    void testSurrogatePairEscapes() {
        eq("\ud83d\ude00", Json.parse("\"\\ud83d\\ude00\""), "pair");
        eq("\ud83d\ude00", Json.parse("\"\\uD83D\\uDE00\""), "pair upper case");
        eq("x\ufffd", Json.parse("\"x\\ud83d\""), "lone high at end");
        eq("\ufffdA", Json.parse("\"\\ud83d\\u0041\""), "high then not low");
        eq("\ufffd", Json.parse("\"\\ude00\""), "lone low");
        eq("\ufffd\ufffd", Json.parse("\"\\ude00\\ud83d\""), "reversed pair");
        eq("\ufffdx", Json.parse("\"\\ud83dx\""), "high then a character");
        eq("\u00e9\u0000/", Json.parse("\"\\u00e9\\u0000\\/\""), "escapes");
        eq("\b\f\n\r\t\"\\", Json.parse("\"\\b\\f\\n\\r\\t\\\"\\\\\""), "short escapes");
    }

    @Test
    void testInvalidUtf8BecomesReplacement() {
        byte[] b = {'"', 'a', (byte) 0xff, 'b', '"'};
        eq("a\ufffdb", Json.parse(b), "invalid utf-8");
    }

    // ------------------------------------------------------------- numbers

    @Test
    void testParseNumbers() {
        eq(0L, Json.parse("0"), "0");
        eq(0L, Json.parse("-0"), "-0");
        eq(-42L, Json.parse("-42"), "-42");
        eq(Long.MAX_VALUE, Json.parse("9223372036854775807"), "max long");
        eq(Long.MIN_VALUE, Json.parse("-9223372036854775808"), "min long");
        eq(9223372036854775808.0, Json.parse("9223372036854775808"), "past max long");
        eq(1.2345678901234568E29, Json.parse("123456789012345678901234567890"), "big integer");
        eq(1.5, Json.parse("1.5"), "1.5");
        eq(1.0, Json.parse("1.0"), "1.0 is a double");
        eq(-0.0025, Json.parse("-2.5e-3"), "exponent");
        eq(1e21, Json.parse("1E+21"), "E+");
        eq(100.0, Json.parse("1e2"), "1e2 is a double");
        eq(4.9e-324, Json.parse("5e-324"), "min double");
        eq(0.0, Json.parse("1e-400"), "underflow is 0");
        fails(JsonException.class, "out of range", () -> Json.parse("1e400"), "overflow");
        fails(JsonException.class, "out of range", () -> Json.parse("-1e400"), "negative overflow");
    }

    @Test
    void testFormatDoublesLikeGo() {
        Object[][] cases = {
            {0.0, "0"}, {-0.0, "-0"}, {1.0, "1"}, {-1.0, "-1"}, {0.1, "0.1"}, {0.25, "0.25"}, {17.5, "17.5"},
            {1.0 / 3, "0.3333333333333333"}, {2.0 / 3, "0.6666666666666666"}, {123456789.0, "123456789"},
            {1e20, "100000000000000000000"}, {1e21, "1e+21"}, {1.5e21, "1.5e+21"}, {1e-6, "0.000001"},
            {1e-7, "1e-7"}, {1.25e-7, "1.25e-7"}, {1e-10, "1e-10"}, {5e-324, "5e-324"},
            {Double.MAX_VALUE, "1.7976931348623157e+308"}, {-2.5e-8, "-2.5e-8"}, {9007199254740993.0, "9007199254740992"},
            {0.000123, "0.000123"}, {1e23, "1e+23"}, {2.82879384806159e17, "282879384806159000"},
            {5.0E-324 * 3, "1.5e-323"}, {100.0, "100"},
        };
        for (Object[] c : cases) {
            eq(c[1], Json.write(c[0]), "format " + c[0]);
        }
        eq("0.1", Json.write(0.1f), "float32 0.1");
        eq("16777216", Json.write(16777216f), "float32 2^24");
        eq("3.4028235e+38", Json.write(Float.MAX_VALUE), "float32 max");
        eq("1e-7", Json.write(1e-7f), "float32 1e-7");
        fails(JsonException.class, "NaN", () -> Json.write(Double.NaN), "NaN");
        fails(JsonException.class, "Infinity", () -> Json.write(Double.POSITIVE_INFINITY), "Inf");
        fails(JsonException.class, "Infinity", () -> Json.write(Float.NEGATIVE_INFINITY), "-Inf float");
    }

    @Test
    void testDoublesRoundTrip() {
        Random r = new Random(42);
        for (int i = 0; i < 4000; i++) {
            double d = Double.longBitsToDouble(r.nextLong());
            if (Double.isNaN(d) || Double.isInfinite(d)) {
                continue;
            }
            String s = Json.write(d);
            Object back = Json.parse(s);
            double got = back instanceof Long l ? l.doubleValue() : (Double) back;
            isTrue(Double.compare(Math.abs(got), Math.abs(d)) == 0, "round trip of " + d + " via " + s + " gave " + got);
        }
        for (int i = 0; i < 2000; i++) {
            double d = r.nextDouble() * Math.pow(10, r.nextInt(40) - 20);
            eq(d, ((Number) Json.parse(Json.write(d))).doubleValue(), "round trip of " + d);
        }
    }

    @Test
    void testWriteIntegers() {
        eq("[1,-2,3,4,5,18446744073709551616,9223372036854775807]",
                Json.write(List.of(1, (short) -2, (byte) 3, 4L, new java.util.concurrent.atomic.AtomicLong(5),
                        java.math.BigInteger.ONE.shiftLeft(64), Long.MAX_VALUE)), "integers");
    }

    // ------------------------------------------------------------- structure

    @Test
    void testNestingAndOrder() {
        String text = "{\"z\":1,\"a\":[true,false,null,{\"y\":\"x\",\"b\":[]},{}],\"m\":{\"k\":[[1.5]]}}";
        Object v = Json.parse(text);
        isTrue(v instanceof LinkedHashMap, "object is a LinkedHashMap");
        eq(List.of("z", "a", "m"), new ArrayList<>(((Map<?, ?>) v).keySet()), "key order kept");
        eq(text, Json.write(v), "round trip keeps order");
        String spaced = " {\n\t\"a\" : [ 1 , 2 ] ,\r\n \"b\" : { } } \n";
        eq("{\"a\":[1,2],\"b\":{}}", Json.write(Json.parse(spaced)), "whitespace");
        eq("{\"a\":2}", Json.write(Json.parse("{\"a\":1,\"a\":2}")), "duplicate key keeps the last");
        List<Object> l = Arrays.asList(1L, null, "x");
        eq(l, Json.parse("[1,null,\"x\"]"), "list");
    }

    @Test
    void testDepthLimit() {
        String ok = "[".repeat(Json.MAX_DEPTH) + "]".repeat(Json.MAX_DEPTH);
        eq(ok, Json.write(Json.parse(ok)), "depth " + Json.MAX_DEPTH);
        String deep = "[".repeat(Json.MAX_DEPTH + 1) + "]".repeat(Json.MAX_DEPTH + 1);
        fails(JsonException.class, "nested deeper", () -> Json.parse(deep), "too deep");
        String deepObj = "{\"a\":".repeat(Json.MAX_DEPTH + 1) + "1" + "}".repeat(Json.MAX_DEPTH + 1);
        fails(JsonException.class, "nested deeper", () -> Json.parse(deepObj), "too deep objects");
        fails(JsonException.class, "nested deeper", () -> Json.parse("[".repeat(100000)), "very deep");
        List<Object> cycle = new ArrayList<>();
        cycle.add(cycle);
        fails(JsonException.class, "cycle", () -> Json.write(cycle), "cycle");
    }

    @Test
    void testRejectsMalformed() {
        String[] bad = {
            "", " ", "[1,]", "[,1]", "{\"a\":1,}", "{,}", "[1 2]", "{a:1}", "{'a':1}", "{\"a\" 1}", "{\"a\":}", "{\"a\"",
            "\"abc", "\"\\x\"", "\"\\u12G4\"", "\"\\u12\"", "\"\\u00e\"", "\"a\u0001\"", "\"a\nb\"", "01", "-01", "1.", ".5",
            "-", "+1", "1e", "1e+", "0x10", "tru", "nul", "True", "NaN", "Infinity", "[1] x", "[1]]", "{}}", "[", "{",
            "[\"a\",", "\"\\\"", "1 2", "\u00a01", "\"\\u\uff11234\"", "/* */1",
        };
        for (String s : bad) {
            fails(JsonException.class, null, () -> Json.parse(s), "parse " + Check.show(s));
        }
        JsonException e = fails(JsonException.class, "after the value", () -> Json.parse("{} x"), "trailing data");
        eq(3, e.offset(), "offset of trailing data");
        fails(JsonException.class, "unterminated string", () -> Json.parse("[\"abc"), "unterminated");
        fails(JsonException.class, "invalid escape", () -> Json.parse("\"\\q\""), "bad escape");
        fails(JsonException.class, "control character", () -> Json.parse("\"\t\""), "raw tab");
    }

    enum Color { RED }

    record Point(int x, String label, List<Integer> tags) {}

    @Test
    void testWriteJavaTypes() {
        Map<Object, Object> m = new LinkedHashMap<>();
        m.put("s", new StringBuilder("sb"));
        m.put(7, 'c');
        m.put(Color.RED, Color.RED);
        m.put("bytes", new byte[] {1, 2, 3});
        m.put("ints", new int[] {1, 2});
        m.put("objs", new Object[] {"a", null});
        m.put("set", new java.util.TreeSet<>(List.of(2, 1)));
        m.put("rec", new Point(1, "p", List.of(3)));
        m.put("uuid", UUID.fromString("0195b3c2-7a1e-7c4d-9f1a-3b2c1d0e9f8a"));
        m.put("when", Instant.parse("2026-11-22T08:15:30.5Z"));
        eq("{\"s\":\"sb\",\"7\":\"c\",\"RED\":\"RED\",\"bytes\":\"AQID\",\"ints\":[1,2],\"objs\":[\"a\",null],\"set\":[1,2],"
                + "\"rec\":{\"x\":1,\"label\":\"p\",\"tags\":[3]},\"uuid\":\"0195b3c2-7a1e-7c4d-9f1a-3b2c1d0e9f8a\","
                + "\"when\":\"2026-11-22T08:15:30.500Z\"}", Json.write(m), "java types");
        fails(JsonException.class, "cannot encode a java.lang.Object", () -> Json.write(List.of(new Object())), "object");
        fails(JsonException.class, "map key", () -> Json.write(Map.of(1.5, 1)), "double key");
        Map<String, Object> nullKey = new java.util.HashMap<>();
        nullKey.put(null, 1);
        fails(JsonException.class, "map key", () -> Json.write(nullKey), "null key");
    }
}
