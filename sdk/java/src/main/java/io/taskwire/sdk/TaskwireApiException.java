package io.taskwire.sdk;

import java.util.Collections;
import java.util.Map;

/**
 * The worker answered a request with an ErrorResponse: {@link #error()} is its
 * short machine name ("not_found", "forbidden", "bad_request", "api_error",
 * ...), {@link #detail()} what else it said ("message" usually explains).
 * "too_large" is a {@link TaskwireTooLargeException}, which names the limit.
 */
public class TaskwireApiException extends TaskwireException {
    private static final long serialVersionUID = 1L;

    private final String error;
    private final transient Map<String, Object> detail;

    public TaskwireApiException(String error, Map<String, Object> detail) {
        super(message(error, detail));
        this.error = error == null ? "" : error;
        this.detail = detail == null ? Collections.emptyMap() : Collections.unmodifiableMap(detail);
    }

    private static String message(String error, Map<String, Object> detail) {
        Object msg = detail == null ? null : detail.get("message");
        if (msg instanceof String s && !s.isEmpty()) {
            return error + ": " + s;
        }
        return error;
    }

    /** The ErrorResponse's error: "not_found", "bad_request", ... */
    public String error() {
        return error;
    }

    /** The ErrorResponse's detail; empty when it had none. */
    public Map<String, Object> detail() {
        return detail;
    }

    /** Whether the error is "not_found": the thing asked for does not exist. */
    public boolean isNotFound() {
        return "not_found".equals(error);
    }
}
