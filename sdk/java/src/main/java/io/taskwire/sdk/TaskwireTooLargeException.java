package io.taskwire.sdk;

import java.util.Map;
import java.util.OptionalLong;

/**
 * The worker answered "too_large": a value (an XCom, a variable, ...) or a
 * request over a size limit. {@link #limit()} is that limit in bytes when the
 * executor named it, and the message always says it.
 */
public class TaskwireTooLargeException extends TaskwireApiException {
    private static final long serialVersionUID = 1L;

    private final long limit;

    public TaskwireTooLargeException(Map<String, Object> detail) {
        super("too_large", detail);
        Object l = detail == null ? null : detail.get("limit");
        this.limit = l instanceof Number n && n.longValue() > 0 ? n.longValue() : 0;
    }

    /** The limit exceeded, in bytes; empty when the worker did not name it. */
    public OptionalLong limit() {
        return limit > 0 ? OptionalLong.of(limit) : OptionalLong.empty();
    }

    @Override
    public String getMessage() {
        String m = super.getMessage();
        if (limit > 0 && !m.contains(Long.toString(limit))) {
            return m + " (the limit is " + limit + " bytes)";
        }
        if (limit == 0 && !m.contains("limit")) {
            return m + " (the worker did not name the limit)";
        }
        return m;
    }
}
