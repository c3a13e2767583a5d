package io.taskwire.sdk;

/**
 * Thrown by a task to fail its try with no retry, whatever tries remain
 * (TaskState failed). The reason is the message, else the cause's.
 */
public class Fail extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public Fail(String reason) {
        super(reason);
    }

    public Fail(String reason, Throwable cause) {
        super(reason, cause);
    }

    public Fail(Throwable cause) {
        super(cause == null ? null : cause.toString(), cause);
    }
}
