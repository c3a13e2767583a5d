package io.taskwire.sdk;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A task's logger. Each call writes one JSON line to the worker's logs
 * channel, which ships it to the task's log:
 * {@code {"timestamp": RFC 3339 UTC, "level": "debug|info|warning|error",
 * "event": message, "logger": name, key: value...}}.
 *
 * <p>Key-values come in pairs: {@code log.info("loaded", "rows", 12, "table",
 * "orders")}. Values are written as JSON when they can be, else as their
 * toString(); a Throwable as its toString(). A key named timestamp, level,
 * event or logger is written with a trailing underscore ("event_") so that it
 * cannot hide the line's own field. Strings longer than 16 KiB are cut, so a
 * line fits the worker's 64 KiB line limit.
 */
public final class TaskLogger {
    /** Log levels; a logger writes its level and above. */
    public enum Level {
        DEBUG("debug"), INFO("info"), WARNING("warning"), ERROR("error");

        private final String wire;

        Level(String wire) {
            this.wire = wire;
        }

        /** The level's name in log lines. */
        public String wireName() {
            return wire;
        }
    }

    static final int MAX_STRING = 16 << 10;
    static final int MAX_LINE = 60 << 10;
    private static final DateTimeFormatter SECONDS = DateTimeFormatter.ofPattern("yyyy-MM-dd'T'HH:mm:ss").withZone(ZoneOffset.UTC);

    private final LogSink sink;
    private final String name;
    private final Level min;

    TaskLogger(LogSink sink, String name, Level min) {
        this.sink = sink;
        this.name = name;
        this.min = min;
    }

    /** A logger writing to the same place under another logger name. */
    public TaskLogger named(String name) {
        return new TaskLogger(sink, name, min);
    }

    /** The logger's name, the lines' "logger". */
    public String name() {
        return name;
    }

    public boolean isEnabled(Level level) {
        return level.ordinal() >= min.ordinal();
    }

    public void debug(String event, Object... keyValues) {
        log(Level.DEBUG, event, null, keyValues);
    }

    public void info(String event, Object... keyValues) {
        log(Level.INFO, event, null, keyValues);
    }

    public void warn(String event, Object... keyValues) {
        log(Level.WARNING, event, null, keyValues);
    }

    public void error(String event, Object... keyValues) {
        log(Level.ERROR, event, null, keyValues);
    }

    /** Logs at error level with the exception under "error" and its stack trace under "stack". */
    public void error(String event, Throwable t, Object... keyValues) {
        log(Level.ERROR, event, t, keyValues);
    }

    /** Logs at level, with t (when not null) under "error" and "stack". */
    public void log(Level level, String event, Throwable t, Object... keyValues) {
        if (!isEnabled(level)) {
            return;
        }
        Map<String, Object> rec = new LinkedHashMap<>();
        rec.put("timestamp", timestamp(Instant.now()));
        rec.put("level", level.wire);
        rec.put("event", cut(event == null ? "" : event));
        rec.put("logger", name);
        if (keyValues != null) {
            for (int i = 0; i < keyValues.length; i += 2) {
                String key;
                Object value;
                if (i + 1 < keyValues.length) {
                    key = String.valueOf(keyValues[i]);
                    value = keyValues[i + 1];
                } else {
                    key = "!BADKEY"; // a value without a key, as Go's slog writes it
                    value = keyValues[i];
                }
                if (key.equals("timestamp") || key.equals("level") || key.equals("event") || key.equals("logger")) {
                    key += "_";
                }
                rec.put(key, value(value));
            }
        }
        if (t != null) {
            rec.put("error", cut(t.toString()));
            rec.put("stack", cut(stackTrace(t)));
        }
        String line = Json.write(rec);
        int size = utf8Length(line);
        if (size > MAX_LINE) {
            Map<String, Object> small = new LinkedHashMap<>();
            for (String k : new String[] {"timestamp", "level", "event", "logger"}) {
                small.put(k, rec.get(k));
            }
            small.put("truncated", "the line was " + size + " bytes, too long for the logs channel: its fields were dropped");
            line = Json.write(small);
        }
        sink.writeLine(line);
    }

    /** v as a value a log line can hold. */
    private static Object value(Object v) {
        if (v == null || v instanceof Boolean || v instanceof Long || v instanceof Integer) {
            return v;
        }
        if (v instanceof CharSequence cs) {
            return cut(cs.toString());
        }
        if (v instanceof Throwable t) {
            return cut(t.toString());
        }
        try {
            String json = Json.write(v);
            if (json.length() > MAX_STRING) {
                return cut(json);
            }
            return v;
        } catch (RuntimeException e) {
            return cut(String.valueOf(v));
        }
    }

    static String cut(String s) {
        if (s.length() <= MAX_STRING) {
            return s;
        }
        int end = MAX_STRING;
        if (Character.isHighSurrogate(s.charAt(end - 1))) {
            end--;
        }
        return s.substring(0, end) + "\n[truncated]";
    }

    private static int utf8Length(String s) {
        int n = 0;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c < 0x80) {
                n++;
            } else if (c < 0x800) {
                n += 2;
            } else if (Character.isHighSurrogate(c) && i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) {
                n += 4;
                i++;
            } else {
                n += 3;
            }
        }
        return n;
    }

    static String stackTrace(Throwable t) {
        StringWriter sw = new StringWriter();
        t.printStackTrace(new PrintWriter(sw));
        return sw.toString();
    }

    /** t as Go's time.RFC3339Nano writes it in UTC: trailing zeros of the fraction dropped. */
    static String timestamp(Instant t) {
        String base = SECONDS.format(t);
        int nanos = t.getNano();
        if (nanos == 0) {
            return base + "Z";
        }
        String frac = String.format("%09d", nanos);
        int end = frac.length();
        while (frac.charAt(end - 1) == '0') {
            end--;
        }
        return base + "." + frac.substring(0, end) + "Z";
    }
}
