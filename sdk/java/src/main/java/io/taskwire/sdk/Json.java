package io.taskwire.sdk;

import java.lang.reflect.Array;
import java.lang.reflect.RecordComponent;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.math.MathContext;
import java.math.RoundingMode;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A small, strict JSON codec, byte-compatible with Go's encoding/json.
 *
 * <p>{@link #parse} yields {@code Map<String,Object>} (a {@link LinkedHashMap},
 * keeping the text's key order; a repeated key keeps its last value), {@code
 * List<Object>}, {@link String}, {@link Long} (integers written without a
 * fraction or exponent that fit a long), {@link Double} (every other number),
 * {@link Boolean} and {@code null}. It rejects anything RFC 8259 does not
 * allow (trailing data, bad escapes, raw control characters in strings,
 * leading zeros, numbers out of double range) and nesting deeper than {@link
 * #MAX_DEPTH}, with a {@link JsonException}. Lone surrogates in {@code \\u}
 * escapes become U+FFFD, as in Go.
 *
 * <p>{@link #write} writes compact JSON the way Go's encoding/json does:
 * {@code \" \\ \b \f \n \r \t} escaped, other control characters as {@code
 * \\u00XX}, U+2028 and U+2029 as escapes, {@code < > &} as {@code \\u003c
 * \\u003e \\u0026} unless escapeHtml is false, other non-ASCII characters as
 * raw UTF-8, a lone surrogate as {@code \\ufffd}; integers in plain digits;
 * doubles in the shortest form that reads back to the same double, in
 * Go's layout ({@code 0.25}, {@code 100}, {@code 1e-7}, {@code 1e+21}).
 * It encodes null, Boolean, Number, CharSequence, Character, Enum (its
 * name), UUID and java.time values (their toString), Map (keys: strings,
 * integers, enums), Iterable, arrays (byte[] as base64, as Go does) and
 * records (their components, in order). Map and record order is kept.
 */
public final class Json {
    /** The deepest nesting of arrays and objects accepted, both ways. */
    public static final int MAX_DEPTH = 1000;

    private Json() {}

    /** Parses JSON text. */
    public static Object parse(String text) {
        Parser p = new Parser(text);
        Object v = p.value(0);
        p.skipWhitespace();
        if (p.pos != text.length()) {
            throw p.error("unexpected data after the value");
        }
        return v;
    }

    /** Parses UTF-8 JSON text; invalid UTF-8 becomes U+FFFD, as in Go. */
    public static Object parse(byte[] utf8) {
        return parse(new String(utf8, StandardCharsets.UTF_8));
    }

    /** Encodes v as Go's json.Marshal does, escaping {@code < > &}. */
    public static String write(Object v) {
        return write(v, true);
    }

    /**
     * Encodes v; escapeHtml false leaves {@code < > &} raw, as a Go
     * json.Encoder with SetEscapeHTML(false) (the task protocol's codec) does.
     */
    public static String write(Object v, boolean escapeHtml) {
        StringBuilder sb = new StringBuilder();
        new Writer(sb, escapeHtml).value(v, 0);
        return sb.toString();
    }

    /** {@link #write(Object, boolean)} as UTF-8 bytes. */
    public static byte[] writeBytes(Object v, boolean escapeHtml) {
        return write(v, escapeHtml).getBytes(StandardCharsets.UTF_8);
    }

    // ---------------------------------------------------------------- parsing

    private static final class Parser {
        private final String s;
        private int pos;

        Parser(String s) {
            this.s = s;
        }

        JsonException error(String msg) {
            return new JsonException(msg, pos);
        }

        void skipWhitespace() {
            while (pos < s.length()) {
                char c = s.charAt(pos);
                if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
                    return;
                }
                pos++;
            }
        }

        Object value(int depth) {
            skipWhitespace();
            if (pos >= s.length()) {
                throw error("unexpected end of input, want a value");
            }
            char c = s.charAt(pos);
            switch (c) {
                case '{':
                    return object(depth + 1);
                case '[':
                    return array(depth + 1);
                case '"':
                    return string();
                case 't':
                    literal("true");
                    return Boolean.TRUE;
                case 'f':
                    literal("false");
                    return Boolean.FALSE;
                case 'n':
                    literal("null");
                    return null;
                default:
                    if (c == '-' || (c >= '0' && c <= '9')) {
                        return number();
                    }
                    throw error("unexpected character " + describe(c) + ", want a value");
            }
        }

        void literal(String word) {
            if (!s.startsWith(word, pos)) {
                throw error("invalid literal, want " + word);
            }
            pos += word.length();
        }

        void checkDepth(int depth) {
            if (depth > MAX_DEPTH) {
                throw error("nested deeper than " + MAX_DEPTH);
            }
        }

        Map<String, Object> object(int depth) {
            checkDepth(depth);
            pos++; // {
            Map<String, Object> m = new LinkedHashMap<>();
            skipWhitespace();
            if (pos < s.length() && s.charAt(pos) == '}') {
                pos++;
                return m;
            }
            while (true) {
                skipWhitespace();
                if (pos >= s.length()) {
                    throw error("unterminated object");
                }
                if (s.charAt(pos) != '"') {
                    throw error("unexpected character " + describe(s.charAt(pos)) + ", want a string key");
                }
                String key = string();
                skipWhitespace();
                if (pos >= s.length() || s.charAt(pos) != ':') {
                    throw error(pos >= s.length() ? "unterminated object" : "unexpected character " + describe(s.charAt(pos)) + ", want ':'");
                }
                pos++;
                m.put(key, value(depth));
                skipWhitespace();
                if (pos >= s.length()) {
                    throw error("unterminated object");
                }
                char c = s.charAt(pos++);
                if (c == '}') {
                    return m;
                }
                if (c != ',') {
                    pos--;
                    throw error("unexpected character " + describe(c) + ", want ',' or '}'");
                }
            }
        }

        List<Object> array(int depth) {
            checkDepth(depth);
            pos++; // [
            List<Object> a = new ArrayList<>();
            skipWhitespace();
            if (pos < s.length() && s.charAt(pos) == ']') {
                pos++;
                return a;
            }
            while (true) {
                a.add(value(depth));
                skipWhitespace();
                if (pos >= s.length()) {
                    throw error("unterminated array");
                }
                char c = s.charAt(pos++);
                if (c == ']') {
                    return a;
                }
                if (c != ',') {
                    pos--;
                    throw error("unexpected character " + describe(c) + ", want ',' or ']'");
                }
            }
        }

        String string() {
            int start = ++pos; // past the quote
            // Fast path: no escapes.
            while (pos < s.length()) {
                char c = s.charAt(pos);
                if (c == '"') {
                    String out = s.substring(start, pos++);
                    return hasLoneSurrogate(out) ? fixSurrogates(out) : out;
                }
                if (c == '\\' || c < 0x20) {
                    break;
                }
                pos++;
            }
            StringBuilder sb = new StringBuilder(s.length() - start < 64 ? 16 : 64);
            sb.append(s, start, pos);
            while (true) {
                if (pos >= s.length()) {
                    throw error("unterminated string");
                }
                char c = s.charAt(pos);
                if (c == '"') {
                    pos++;
                    String out = sb.toString();
                    return hasLoneSurrogate(out) ? fixSurrogates(out) : out;
                }
                if (c < 0x20) {
                    throw error("control character " + describe(c) + " in string");
                }
                if (c != '\\') {
                    sb.append(c);
                    pos++;
                    continue;
                }
                if (pos + 1 >= s.length()) {
                    throw error("unterminated string");
                }
                char e = s.charAt(pos + 1);
                switch (e) {
                    case '"': sb.append('"'); break;
                    case '\\': sb.append('\\'); break;
                    case '/': sb.append('/'); break;
                    case 'b': sb.append('\b'); break;
                    case 'f': sb.append('\f'); break;
                    case 'n': sb.append('\n'); break;
                    case 'r': sb.append('\r'); break;
                    case 't': sb.append('\t'); break;
                    case 'u': {
                        pos += 2;
                        char u = hex4();
                        if (Character.isHighSurrogate(u) && s.startsWith("\\u", pos) && pos + 6 <= s.length()) {
                            int save = pos;
                            pos += 2;
                            char low = hex4();
                            if (Character.isLowSurrogate(low)) {
                                sb.append(u).append(low);
                                continue;
                            }
                            pos = save; // not a pair: read that escape on its own
                            sb.append('\uFFFD');
                            continue;
                        }
                        sb.append(Character.isSurrogate(u) ? '\uFFFD' : u);
                        continue;
                    }
                    default:
                        pos++;
                        throw error("invalid escape " + describe(e) + " in string");
                }
                pos += 2;
            }
        }

        char hex4() {
            if (pos + 4 > s.length()) {
                throw error("unterminated \\u escape");
            }
            int v = 0;
            for (int i = 0; i < 4; i++) {
                int d = Character.digit(s.charAt(pos + i), 16);
                if (d < 0 || s.charAt(pos + i) > 'f') { // digit() accepts non-ASCII digits
                    pos += i;
                    throw error("invalid \\u escape");
                }
                v = v * 16 + d;
            }
            pos += 4;
            return (char) v;
        }

        Object number() {
            int start = pos;
            if (s.charAt(pos) == '-') {
                pos++;
            }
            if (pos >= s.length() || !isDigit(s.charAt(pos))) {
                throw error("invalid number, want a digit");
            }
            if (s.charAt(pos) == '0') {
                pos++;
            } else {
                while (pos < s.length() && isDigit(s.charAt(pos))) {
                    pos++;
                }
            }
            boolean integer = true;
            if (pos < s.length() && s.charAt(pos) == '.') {
                integer = false;
                pos++;
                if (pos >= s.length() || !isDigit(s.charAt(pos))) {
                    throw error("invalid number, want a digit after '.'");
                }
                while (pos < s.length() && isDigit(s.charAt(pos))) {
                    pos++;
                }
            }
            if (pos < s.length() && (s.charAt(pos) == 'e' || s.charAt(pos) == 'E')) {
                integer = false;
                pos++;
                if (pos < s.length() && (s.charAt(pos) == '+' || s.charAt(pos) == '-')) {
                    pos++;
                }
                if (pos >= s.length() || !isDigit(s.charAt(pos))) {
                    throw error("invalid number, want a digit in the exponent");
                }
                while (pos < s.length() && isDigit(s.charAt(pos))) {
                    pos++;
                }
            }
            String text = s.substring(start, pos);
            if (integer && text.length() <= 20) {
                try {
                    return Long.parseLong(text);
                } catch (NumberFormatException tooBig) {
                    // a double, below
                }
            }
            double d = Double.parseDouble(text);
            if (Double.isInfinite(d)) {
                pos = start;
                throw error("number " + (text.length() > 40 ? text.substring(0, 40) + "..." : text) + " out of range");
            }
            return d;
        }

        private static boolean isDigit(char c) {
            return c >= '0' && c <= '9';
        }
    }

    private static boolean hasLoneSurrogate(String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (Character.isHighSurrogate(c) && i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) {
                i++;
            } else if (Character.isSurrogate(c)) {
                return true;
            }
        }
        return false;
    }

    private static String fixSurrogates(String s) {
        StringBuilder sb = new StringBuilder(s.length());
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (Character.isHighSurrogate(c) && i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) {
                sb.append(c).append(s.charAt(++i));
            } else {
                sb.append(Character.isSurrogate(c) ? '\uFFFD' : c);
            }
        }
        return sb.toString();
    }

    static String describe(char c) {
        if (c >= 0x20 && c < 0x7f) {
            return "'" + c + "'";
        }
        return String.format("U+%04X", (int) c);
    }

    // ---------------------------------------------------------------- writing

    private static final char[] HEX = "0123456789abcdef".toCharArray();

    private static final class Writer {
        private final StringBuilder sb;
        private final boolean escapeHtml;

        Writer(StringBuilder sb, boolean escapeHtml) {
            this.sb = sb;
            this.escapeHtml = escapeHtml;
        }

        void value(Object v, int depth) {
            if (v == null) {
                sb.append("null");
            } else if (v instanceof CharSequence cs) {
                string(cs);
            } else if (v instanceof Boolean b) {
                sb.append(b ? "true" : "false");
            } else if (v instanceof Double d) {
                sb.append(formatDouble(d));
            } else if (v instanceof Float f) {
                sb.append(formatFloat(f));
            } else if (v instanceof Long || v instanceof Integer || v instanceof Short || v instanceof Byte
                    || v instanceof BigInteger || v instanceof AtomicInteger || v instanceof AtomicLong) {
                sb.append(v.toString());
            } else if (v instanceof BigDecimal bd) {
                sb.append(bd.toString());
            } else if (v instanceof Number n) {
                sb.append(formatDouble(n.doubleValue()));
            } else if (v instanceof Character c) {
                string(String.valueOf(c));
            } else if (v instanceof Enum<?> e) {
                string(e.name());
            } else if (v instanceof UUID || v instanceof java.time.temporal.TemporalAccessor) {
                string(v.toString());
            } else if (v instanceof Map<?, ?> m) {
                enter(depth);
                sb.append('{');
                boolean first = true;
                for (Map.Entry<?, ?> e : m.entrySet()) {
                    if (!first) {
                        sb.append(',');
                    }
                    first = false;
                    string(key(e.getKey()));
                    sb.append(':');
                    value(e.getValue(), depth + 1);
                }
                sb.append('}');
            } else if (v instanceof Iterable<?> it) {
                enter(depth);
                sb.append('[');
                boolean first = true;
                for (Object e : it) {
                    if (!first) {
                        sb.append(',');
                    }
                    first = false;
                    value(e, depth + 1);
                }
                sb.append(']');
            } else if (v instanceof byte[] bytes) {
                string(Base64.getEncoder().encodeToString(bytes));
            } else if (v.getClass().isArray()) {
                enter(depth);
                sb.append('[');
                int n = Array.getLength(v);
                for (int i = 0; i < n; i++) {
                    if (i > 0) {
                        sb.append(',');
                    }
                    value(Array.get(v, i), depth + 1);
                }
                sb.append(']');
            } else if (v instanceof Record r) {
                enter(depth);
                sb.append('{');
                boolean first = true;
                for (RecordComponent rc : r.getClass().getRecordComponents()) {
                    Object cv;
                    try {
                        var acc = rc.getAccessor();
                        acc.setAccessible(true);
                        cv = acc.invoke(r);
                    } catch (ReflectiveOperationException | RuntimeException e) {
                        throw new JsonException("cannot read " + r.getClass().getName() + "." + rc.getName() + ": " + e);
                    }
                    if (!first) {
                        sb.append(',');
                    }
                    first = false;
                    string(rc.getName());
                    sb.append(':');
                    value(cv, depth + 1);
                }
                sb.append('}');
            } else {
                throw new JsonException("cannot encode a " + v.getClass().getName() + " as JSON");
            }
        }

        private void enter(int depth) {
            if (depth >= MAX_DEPTH) {
                throw new JsonException("value nested deeper than " + MAX_DEPTH + " (a cycle?)");
            }
        }

        private String key(Object k) {
            if (k instanceof String s) {
                return s;
            }
            if (k instanceof CharSequence || k instanceof Character || k instanceof Long || k instanceof Integer
                    || k instanceof Short || k instanceof Byte || k instanceof BigInteger) {
                return k.toString();
            }
            if (k instanceof Enum<?> e) {
                return e.name();
            }
            throw new JsonException("cannot encode a map key of type " + (k == null ? "null" : k.getClass().getName()));
        }

        private void string(CharSequence s) {
            sb.append('"');
            int n = s.length();
            int start = 0; // start of the run of characters written as they are
            for (int i = 0; i < n; i++) {
                char c = s.charAt(i);
                String esc = null;
                if (c < 0x20 || c == '"' || c == '\\') {
                    switch (c) {
                        case '"': esc = "\\\""; break;
                        case '\\': esc = "\\\\"; break;
                        case '\b': esc = "\\b"; break;
                        case '\f': esc = "\\f"; break;
                        case '\n': esc = "\\n"; break;
                        case '\r': esc = "\\r"; break;
                        case '\t': esc = "\\t"; break;
                        default: esc = "\\u00" + HEX[c >> 4] + HEX[c & 0xf];
                    }
                } else if (c == '<' || c == '>' || c == '&') {
                    if (escapeHtml) {
                        esc = "\\u00" + HEX[c >> 4] + HEX[c & 0xf];
                    }
                } else if (c == '\u2028' || c == '\u2029') {
                    esc = c == '\u2028' ? "\\u2028" : "\\u2029";
                } else if (Character.isSurrogate(c)) {
                    if (Character.isHighSurrogate(c) && i + 1 < n && Character.isLowSurrogate(s.charAt(i + 1))) {
                        i++; // a valid pair, written as it is
                    } else {
                        esc = "\\ufffd";
                    }
                }
                if (esc != null) {
                    sb.append(s, start, i).append(esc);
                    start = i + 1;
                }
            }
            sb.append(s, start, n).append('"');
        }
    }

    // ---------------------------------------------------------------- numbers

    /**
     * Formats d as Go's encoding/json formats a float64: the shortest digits
     * that read back to d, in plain notation for 1e-6 <= |d| < 1e21 and as
     * {@code 1.5e-7} / {@code 1e+21} beyond.
     */
    public static String formatDouble(double d) {
        if (Double.isNaN(d) || Double.isInfinite(d)) {
            throw new JsonException("cannot encode " + d + " as JSON");
        }
        boolean neg = (Double.doubleToRawLongBits(d) & Long.MIN_VALUE) != 0;
        double abs = Math.abs(d);
        if (abs == 0) {
            return neg ? "-0" : "0";
        }
        BigDecimal digits = shortest(new BigDecimal(abs), 17, c -> Double.parseDouble(c) == abs);
        return layout(neg, digits, abs < 1e-6 || abs >= 1e21);
    }

    /** Formats f as Go's encoding/json formats a float32. */
    public static String formatFloat(float f) {
        if (Float.isNaN(f) || Float.isInfinite(f)) {
            throw new JsonException("cannot encode " + f + " as JSON");
        }
        boolean neg = (Float.floatToRawIntBits(f) & Integer.MIN_VALUE) != 0;
        float abs = Math.abs(f);
        if (abs == 0) {
            return neg ? "-0" : "0";
        }
        BigDecimal digits = shortest(new BigDecimal(abs), 9, c -> Float.parseFloat(c) == abs);
        return layout(neg, digits, abs < 1e-6f || abs >= 1e21f);
    }

    /**
     * The shortest decimal that reads back to the exact positive value x
     * (as readsBack says), the nearest one when two of that length do.
     */
    private static BigDecimal shortest(BigDecimal x, int maxDigits, java.util.function.Predicate<String> readsBack) {
        for (int p = 1; p <= maxDigits; p++) {
            BigDecimal nearest = x.round(new MathContext(p, RoundingMode.HALF_EVEN));
            if (readsBack.test(nearest.toString())) {
                return nearest;
            }
            // The interval that reads back to x can be lopsided (at a power
            // of two); the other neighbour of x at p digits may be in it.
            BigDecimal other = nearest.compareTo(x) >= 0
                    ? x.round(new MathContext(p, RoundingMode.FLOOR))
                    : x.round(new MathContext(p, RoundingMode.CEILING));
            if (readsBack.test(other.toString())) {
                return other;
            }
        }
        return x.round(new MathContext(maxDigits, RoundingMode.HALF_EVEN)); // not reached
    }

    private static String layout(boolean neg, BigDecimal v, boolean exponent) {
        v = v.stripTrailingZeros();
        String digits = v.unscaledValue().toString();
        int scale = v.scale();
        int k = digits.length();
        StringBuilder sb = new StringBuilder(k + 8);
        if (neg) {
            sb.append('-');
        }
        if (exponent) {
            int e = k - 1 - scale;
            sb.append(digits.charAt(0));
            if (k > 1) {
                sb.append('.').append(digits, 1, k);
            }
            sb.append('e').append(e < 0 ? '-' : '+');
            int ae = Math.abs(e);
            if (ae < 10 && e >= 0) {
                sb.append('0'); // Go writes e+07 but cleans e-07 up to e-7
            }
            sb.append(ae);
        } else if (scale <= 0) {
            sb.append(digits);
            for (int i = 0; i < -scale; i++) {
                sb.append('0');
            }
        } else if (scale >= k) {
            sb.append("0.");
            for (int i = 0; i < scale - k; i++) {
                sb.append('0');
            }
            sb.append(digits);
        } else {
            sb.append(digits, 0, k - scale).append('.').append(digits, k - scale, k);
        }
        return sb.toString();
    }
}
