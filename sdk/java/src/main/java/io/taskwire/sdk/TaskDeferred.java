package io.taskwire.sdk;

/**
 * Thrown by {@link TaskContext#defer} once the worker has accepted the
 * deferral: the try is over (DeferTask was its terminal message) and it
 * resumes when the trigger fires. Let it propagate out of the task; nothing
 * the task does afterwards is reported.
 */
public final class TaskDeferred extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final String trigger;
    private final String nextMethod;

    TaskDeferred(String trigger, String nextMethod) {
        super("task deferred: until " + trigger + " fires, then " + nextMethod, null, false, false);
        this.trigger = trigger;
        this.nextMethod = nextMethod;
    }

    /** The trigger's classpath. */
    public String trigger() {
        return trigger;
    }

    /** The method the task resumes at. */
    public String nextMethod() {
        return nextMethod;
    }
}
