package io.taskwire.sdk;

/**
 * A task's code, registered with {@link TaskRuntime#register} (or, for the
 * method a deferred task resumes at, {@link TaskRuntime#registerMethod}).
 *
 * <p>How run ends decides the try's outcome:
 * <ul>
 *   <li>it returns: SucceedTask, after pushing a non-null return value as
 *       the XCom "return_value";</li>
 *   <li>it throws {@link Skip}: TaskState skipped;</li>
 *   <li>it throws {@link Fail}: TaskState failed, with no retry;</li>
 *   <li>it throws the {@link TaskDeferred} of {@link TaskContext#defer}: the
 *       try is deferred;</li>
 *   <li>it throws anything else: RetryTask (retried while tries remain),
 *       with the exception as the reason and its stack trace in the log.</li>
 * </ul>
 */
@FunctionalInterface
public interface Task {
    Object run(TaskContext ctx) throws Exception;
}
