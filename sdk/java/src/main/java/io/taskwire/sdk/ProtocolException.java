package io.taskwire.sdk;

import java.io.IOException;

/**
 * A frame that breaks the task protocol: too large, not JSON, or not the
 * shape a message must have.
 */
public final class ProtocolException extends IOException {
    private static final long serialVersionUID = 1L;

    public ProtocolException(String message) {
        super(message);
    }

    public ProtocolException(String message, Throwable cause) {
        super(message, cause);
    }
}
