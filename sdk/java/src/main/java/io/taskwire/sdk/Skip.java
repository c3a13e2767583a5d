package io.taskwire.sdk;

/**
 * Thrown by a task to end its try as skipped (TaskState skipped), with the
 * message as the reason.
 */
public class Skip extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public Skip(String reason) {
        super(reason);
    }
}
