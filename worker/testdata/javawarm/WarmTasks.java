// A warm Java SDK runtime for the worker's warm-mode tests: the same tasks
// as ../warmruntime (Go), each try on a thread of its own.

import io.taskwire.sdk.TaskRuntime;
import java.time.Duration;
import java.util.Map;

public final class WarmTasks {
    public static void main(String[] args) {
        long pid = ProcessHandle.current().pid();
        new TaskRuntime()
                .register("noop", ctx -> {
                    ctx.log().info("noop", "pid", pid);
                    return null;
                })
                // block runs until it is cancelled (its thread is interrupted).
                .register("block", ctx -> {
                    ctx.log().info("started pid=" + pid);
                    try {
                        Thread.sleep(3_600_000);
                    } catch (InterruptedException e) {
                        ctx.log().info("cancelled");
                        throw e;
                    }
                    return null;
                })
                // stubborn ignores its cancellation.
                .register("stubborn", ctx -> {
                    ctx.log().info("started pid=" + pid);
                    long end = System.nanoTime() + 3_600_000_000_000L;
                    while (System.nanoTime() < end) {
                        try {
                            Thread.sleep(1000);
                        } catch (InterruptedException ignored) {
                            // keeps going
                        }
                    }
                    return null;
                })
                // api reads the variable named after its task instance and masks it.
                .register("api", ctx -> {
                    String v = ctx.variable(ctx.ti().id());
                    ctx.maskSecret(v);
                    ctx.log().info("the value is " + v);
                    return null;
                })
                .register("defer", ctx -> {
                    throw ctx.defer("taskwire.triggers.TimeDelta", Map.of("delta", "1s"), "resume",
                            Map.of("n", "1"), Duration.ofMinutes(1));
                })
                .registerMethod("defer", "resume", ctx -> {
                    ctx.log().info("resumed with " + ctx.nextKwargs().get("n"));
                    return null;
                })
                .main(args);
    }
}
