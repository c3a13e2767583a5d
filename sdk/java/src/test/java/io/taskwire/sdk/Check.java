package io.taskwire.sdk;

import java.util.Arrays;
import java.util.Objects;

/** Assertions for the tests: each throws AssertionError with what differed. */
final class Check {
    private Check() {}

    interface Body {
        void run() throws Exception;
    }

    static void eq(Object want, Object got, String what) {
        if (!Objects.equals(want, got)) {
            throw new AssertionError(what + ": got " + show(got) + ", want " + show(want));
        }
    }

    static void bytesEq(byte[] want, byte[] got, String what) {
        if (!Arrays.equals(want, got)) {
            throw new AssertionError(what + ": bytes differ\ngot  " + show(new String(got, java.nio.charset.StandardCharsets.UTF_8))
                    + "\nwant " + show(new String(want, java.nio.charset.StandardCharsets.UTF_8)));
        }
    }

    static void isTrue(boolean cond, String what) {
        if (!cond) {
            throw new AssertionError(what);
        }
    }

    static void contains(String haystack, String needle, String what) {
        if (haystack == null || !haystack.contains(needle)) {
            throw new AssertionError(what + ": " + show(haystack) + " does not contain " + show(needle));
        }
    }

    /** Runs body, which must throw a T whose message contains msgPart (when not null); returns it. */
    static <T extends Throwable> T fails(Class<T> type, String msgPart, Body body, String what) {
        try {
            body.run();
        } catch (Throwable t) {
            if (!type.isInstance(t)) {
                AssertionError e = new AssertionError(what + ": threw " + t + ", want a " + type.getSimpleName());
                e.initCause(t);
                throw e;
            }
            if (msgPart != null && (t.getMessage() == null || !t.getMessage().contains(msgPart))) {
                throw new AssertionError(what + ": message " + show(t.getMessage()) + " does not contain " + show(msgPart));
            }
            return type.cast(t);
        }
        throw new AssertionError(what + ": did not throw, want a " + type.getSimpleName());
    }

    static String show(Object v) {
        if (v instanceof String s) {
            StringBuilder sb = new StringBuilder("\"");
            for (char c : s.toCharArray()) {
                if (c < 0x20 || c == 0x7f) {
                    sb.append(String.format("\\x%02x", (int) c));
                } else {
                    sb.append(c);
                }
            }
            return sb.append('"').toString();
        }
        return v == null ? "null" : v + " (" + v.getClass().getSimpleName() + ")";
    }
}
