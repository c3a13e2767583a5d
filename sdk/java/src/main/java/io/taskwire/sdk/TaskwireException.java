package io.taskwire.sdk;

/**
 * A request to the worker could not be made or answered: the connection is
 * gone, or the worker sent something the protocol does not allow. (An
 * answer that is an error is a {@link TaskwireApiException}.)
 */
public class TaskwireException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public TaskwireException(String message) {
        super(message);
    }

    public TaskwireException(String message, Throwable cause) {
        super(message, cause);
    }
}
