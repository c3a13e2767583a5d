package io.taskwire.sdk;

import java.time.Duration;

/** Go duration strings, as time.Duration.String writes them ("90s" is "1m30s"). */
final class GoDuration {
    private GoDuration() {}

    /** d as Go writes a time.Duration of the same length; d must fit Go's int64 nanoseconds. */
    static String format(Duration d) {
        long ns;
        try {
            ns = d.toNanos();
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException("duration " + d + " is too long for a Go duration", e);
        }
        return format(ns);
    }

    static String format(long ns) {
        if (ns == 0) {
            return "0s";
        }
        StringBuilder sb = new StringBuilder();
        if (ns < 0) {
            sb.append('-');
        }
        // Work on the magnitude as an unsigned long (Long.MIN_VALUE included).
        long u = ns < 0 ? -ns : ns;
        if (Long.compareUnsigned(u, 1_000_000_000L) < 0) {
            if (u < 1_000L) {
                return sb.append(u).append("ns").toString();
            }
            if (u < 1_000_000L) {
                return fraction(sb, u, 3).append("\u00b5s").toString();
            }
            return fraction(sb, u, 6).append("ms").toString();
        }
        long secs = Long.divideUnsigned(u, 1_000_000_000L);
        long frac = Long.remainderUnsigned(u, 1_000_000_000L);
        long h = secs / 3600;
        long m = secs / 60 % 60;
        long s = secs % 60;
        if (h > 0) {
            sb.append(h).append('h');
        }
        if (h > 0 || m > 0) {
            sb.append(m).append('m');
        }
        sb.append(s);
        appendFraction(sb, frac, 9);
        return sb.append('s').toString();
    }

    /** Appends v / 10^digits with its fraction, trailing zeros dropped. */
    private static StringBuilder fraction(StringBuilder sb, long v, int digits) {
        long pow = 1;
        for (int i = 0; i < digits; i++) {
            pow *= 10;
        }
        sb.append(v / pow);
        appendFraction(sb, v % pow, digits);
        return sb;
    }

    private static void appendFraction(StringBuilder sb, long frac, int digits) {
        if (frac == 0) {
            return;
        }
        String f = String.format("%0" + digits + "d", frac);
        int end = f.length();
        while (f.charAt(end - 1) == '0') {
            end--;
        }
        sb.append('.').append(f, 0, end);
    }
}
